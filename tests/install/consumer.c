/* An app's first use of an installed fedlora, in C (tests/install/install_test.sh builds it
 * out of tree with pkg-config and with find_package): open a runtime on a base model, take
 * the suggestion strip after a prefix, close. Usage: consumer MODEL_DIR STATE_DIR */
#include <fedlora.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL_DIR STATE_DIR\n", argv[0]);
    return 2;
  }
  if (fedlora_abi_version() != FEDLORA_ABI_VERSION) {
    fprintf(stderr, "ABI %d, header %d\n", fedlora_abi_version(), FEDLORA_ABI_VERSION);
    return 1;
  }
  fedlora_config cfg;
  fedlora_config_init(&cfg);
  cfg.model_dir = argv[1];
  cfg.state_dir = argv[2];
  cfg.threads = 1;
  fedlora_runtime* rt = NULL;
  if (fedlora_runtime_open(&cfg, &rt) != FEDLORA_OK) {
    fprintf(stderr, "open: %s\n", fedlora_last_error());
    return 1;
  }
  fedlora_suggestion out[3];
  int n = 0;
  if (fedlora_suggest(rt, "The", 3, out, &n) != FEDLORA_OK || n < 1) {
    fprintf(stderr, "suggest: %s (n = %d)\n", fedlora_last_error(), n);
    fedlora_runtime_close(rt);
    return 1;
  }
  printf("fedlora %s (C): %d suggestions, first \"%s\" (log p %.3f)\n", fedlora_version(), n,
         out[0].word, out[0].log_prob);
  return fedlora_runtime_close(rt) == FEDLORA_OK ? 0 : 1;
}
