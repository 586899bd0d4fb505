/* A whole device cycle through the C API, written in C and linked against libfedlora.so only:
 * bad input refused with messages, observe, suggest, policy refusals, local training, enrolment,
 * two devices taking part in a secure-aggregation round against a real coordinator on loopback
 * (started by capi_cycle.sh), the signed release installed, and forget; then the hardening
 * checks of capi_hardening.h (suggest during a stalled round, unplugging stops it, close while
 * calls are in flight).
 *
 * usage: capi_cycle_test MODEL_DIR WORK_DIR HOST:PORT CA_PEM TOKEN0 TOKEN1 RELEASE_KEY_PUB */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fedlora.h"

static int failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,       \
              __LINE__, #cond, fedlora_last_error());                               \
      ++failures;                                                                   \
    }                                                                               \
  } while (0)

#define CHECK_STATUS(call, want)                                                    \
  do {                                                                              \
    int got_ = (call);                                                              \
    if (got_ != (want)) {                                                           \
      fprintf(stderr, "%s:%d: %s returned %s, want %s (last error: %s)\n", __FILE__,\
              __LINE__, #call, fedlora_status_name(got_), fedlora_status_name(want),\
              fedlora_last_error());                                                \
      ++failures;                                                                   \
    }                                                                               \
  } while (0)

static int contains(const char* haystack, const char* needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

static const char* model_dir;
static const char* work_dir;
static fedlora_coordinator coordinator;

static fedlora_runtime* open_device(const char* name, const char* const* trusted) {
  char state[1024];
  fedlora_config cfg;
  fedlora_runtime* rt = NULL;
  snprintf(state, sizeof(state), "%s/%s", work_dir, name);
  fedlora_config_init(&cfg);
  cfg.model_dir = model_dir;
  cfg.state_dir = state;
  cfg.threads = 1;
  cfg.trusted_release_keys = trusted;
  CHECK_STATUS(fedlora_runtime_open(&cfg, &rt), FEDLORA_OK);
  return rt;
}

/* A device owner's policy while the phone charges on Wi-Fi at night. */
static fedlora_policy night_policy(void) {
  fedlora_policy p;
  fedlora_policy_init(&p);
  p.charging = 1;
  p.unmetered = 1;
  p.idle = 1;
  p.battery_percent = 80;
  p.max_seconds = 240;
  return p;
}

static void observe_user(fedlora_runtime* rt, int user) {
  char line[256];
  int i;
  for (i = 0; i < 30; ++i) {
    snprintf(line, sizeof(line), "secretword%d meet me at the blue harbour cafe at seven %d",
             user, i);
    CHECK_STATUS(fedlora_observe(rt, line), FEDLORA_OK);
  }
}

struct participation_job {
  fedlora_runtime* rt;
  int status;
  fedlora_participation out;
  char error[512];
};

static void* participate_thread(void* arg) {
  struct participation_job* job = (struct participation_job*)arg;
  fedlora_policy p = night_policy();
  fedlora_participation_init(&job->out);
  job->status = fedlora_participate(job->rt, &coordinator, &p, &job->out);
  snprintf(job->error, sizeof(job->error), "%s", fedlora_last_error());
  return NULL;
}

#include "capi_hardening.h"

static void check_bad_input(void) {
  fedlora_config cfg;
  fedlora_runtime* rt = (fedlora_runtime*)&cfg; /* must be reset to NULL on failure */
  char missing[1024];
  CHECK(fedlora_abi_version() == FEDLORA_ABI_VERSION);
  CHECK(strlen(fedlora_version()) > 0);
  CHECK(strcmp(fedlora_status_name(FEDLORA_REFUSED_BY_POLICY), "REFUSED_BY_POLICY") == 0);
  /* A config that skipped fedlora_config_init. */
  memset(&cfg, 0, sizeof(cfg));
  CHECK_STATUS(fedlora_runtime_open(&cfg, &rt), FEDLORA_INVALID_ARGUMENT);
  CHECK(contains(fedlora_last_error(), "fedlora_config_init"));
  CHECK(rt == NULL);
  /* A model folder that does not exist: the message names it. */
  snprintf(missing, sizeof(missing), "%s/no-such-model", work_dir);
  fedlora_config_init(&cfg);
  cfg.model_dir = missing;
  cfg.state_dir = work_dir;
  CHECK(fedlora_runtime_open(&cfg, &rt) == FEDLORA_NOT_FOUND);
  CHECK(contains(fedlora_last_error(), "no-such-model"));
  CHECK(rt == NULL);
  /* A store key of the wrong length. */
  cfg.model_dir = model_dir;
  cfg.store_key = (const uint8_t*)"short";
  cfg.store_key_len = 5;
  CHECK_STATUS(fedlora_runtime_open(&cfg, &rt), FEDLORA_INVALID_ARGUMENT);
  CHECK(contains(fedlora_last_error(), "32 bytes"));
  CHECK_STATUS(fedlora_observe(NULL, "x"), FEDLORA_INVALID_ARGUMENT);
  CHECK_STATUS(fedlora_runtime_close(NULL), FEDLORA_OK);

  /* An app built against an older, shorter fedlora_config: the fields past its struct_size
   * are garbage here and must be ignored (their defaults apply). */
  {
    char state[1024];
    snprintf(state, sizeof(state), "%s/old-app", work_dir);
    fedlora_config_init(&cfg);
    cfg.model_dir = model_dir;
    cfg.state_dir = state;
    cfg.threads = 1;
    cfg.struct_size = offsetof(fedlora_config, store_key);
    cfg.store_key = (const uint8_t*)"garbage";
    cfg.store_key_len = 7;
    cfg.retention_days = -5;
    cfg.trusted_release_keys = (const char* const*)"garbage";
    CHECK_STATUS(fedlora_runtime_open(&cfg, &rt), FEDLORA_OK);
    if (rt != NULL) {
      CHECK_STATUS(fedlora_observe(rt, "an old app's text"), FEDLORA_OK);
      fedlora_runtime_close(rt);
    }
  }
}

/* Observe, suggest, refusals and local training on one device. */
static void check_local(fedlora_runtime* rt) {
  fedlora_suggestion strip[3];
  fedlora_budget budget;
  fedlora_policy policy;
  fedlora_train_result trained;
  int n = -1;
  int64_t entries = 0, bytes = 0;
  char personal[1024];
  struct stat st;

  /* Nothing observed yet: training has nothing to train on. */
  fedlora_budget_init(&budget);
  budget.max_steps = 3;
  policy = night_policy();
  fedlora_train_result_init(&trained);
  CHECK_STATUS(fedlora_train(rt, &budget, &policy, &trained), FEDLORA_FAILED_PRECONDITION);
  CHECK(contains(fedlora_last_error(), "fedlora_observe"));

  CHECK_STATUS(fedlora_observe(rt, ""), FEDLORA_INVALID_ARGUMENT);
  observe_user(rt, 0);
  CHECK_STATUS(fedlora_store_size(rt, &entries, &bytes), FEDLORA_OK);
  CHECK(entries == 30);
  CHECK(bytes > 30 * 40);

  CHECK_STATUS(fedlora_suggest(rt, "meet me at the", 3, strip, &n), FEDLORA_OK);
  CHECK(n == 3);
  if (n == 3) {
    CHECK(strlen(strip[0].word) > 0 && strlen(strip[2].word) > 0);
    CHECK(strcmp(strip[0].word, strip[1].word) != 0);
    CHECK(strip[0].log_prob < 0 && strip[1].log_prob < 0 && strip[2].log_prob < 0);
  }
  CHECK_STATUS(fedlora_suggest(rt, "meet me", 0, strip, &n), FEDLORA_INVALID_ARGUMENT);
  CHECK(contains(fedlora_last_error(), "1..16"));

  /* The policy says no: not charging and a low battery, both named; nothing trained. */
  policy.charging = 0;
  policy.battery_percent = 12;
  CHECK_STATUS(fedlora_train(rt, &budget, &policy, &trained), FEDLORA_REFUSED_BY_POLICY);
  CHECK(contains(fedlora_last_error(), "not charging"));
  CHECK(contains(fedlora_last_error(), "12%"));
  /* The conditions left at their defaults ("not known") refuse too. */
  fedlora_policy_init(&policy);
  CHECK_STATUS(fedlora_train(rt, &budget, &policy, &trained), FEDLORA_REFUSED_BY_POLICY);
  snprintf(personal, sizeof(personal), "%s/device0/personal/adapter_config.json", work_dir);
  CHECK(stat(personal, &st) != 0);

  /* Allowed: a budget of three steps runs three. */
  policy = night_policy();
  CHECK_STATUS(fedlora_train(rt, &budget, &policy, &trained), FEDLORA_OK);
  CHECK(trained.steps == 3);
  CHECK(isfinite(trained.first_loss) && isfinite(trained.last_loss));
  CHECK(stat(personal, &st) == 0);
  /* The default budget (20 steps): the loss on the user's repeated line falls clearly (single
   * batches are noisy, so over more than a few steps). */
  fedlora_budget_init(&budget);
  CHECK_STATUS(fedlora_train(rt, &budget, &policy, &trained), FEDLORA_OK);
  printf("local training: %d steps, loss %.4f -> %.4f in %.2f s\n", trained.steps,
         trained.first_loss, trained.last_loss, trained.seconds);
  CHECK(trained.steps == 20);
  CHECK(trained.last_loss < trained.first_loss - 0.1);
  CHECK_STATUS(fedlora_suggest(rt, "meet me at the", 3, strip, &n), FEDLORA_OK);
  CHECK(n == 3);
}

int main(int argc, char** argv) {
  const char* trusted[2];
  fedlora_runtime* dev[2];
  struct participation_job jobs[2];
  pthread_t threads[2];
  fedlora_participation refused;
  fedlora_policy metered;
  fedlora_suggestion strip[3];
  fedlora_budget budget;
  fedlora_train_result trained;
  fedlora_policy policy;
  uint64_t version = 99;
  int64_t entries = -1;
  int i, n = 0;

  setvbuf(stdout, NULL, _IOLBF, 0); /* progress is seen even if the driver's timeout hits */
  if (argc != 8) {
    fprintf(stderr, "usage: %s MODEL WORK HOST:PORT CA TOKEN0 TOKEN1 RELEASE_KEY_PUB\n", argv[0]);
    return 2;
  }
  model_dir = argv[1];
  work_dir = argv[2];
  fedlora_coordinator_init(&coordinator);
  coordinator.address = argv[3];
  coordinator.ca_pem_path = argv[4];
  coordinator.server_name = "localhost";
  trusted[0] = argv[7];
  trusted[1] = NULL;

  check_bad_input();
  dev[0] = open_device("device0", trusted);
  dev[1] = open_device("device1", trusted);
  if (dev[0] == NULL || dev[1] == NULL) return 1;
  CHECK_STATUS(fedlora_runtime_release(dev[0], &version), FEDLORA_OK);
  CHECK(version == 0);
  check_local(dev[0]);
  observe_user(dev[1], 1);

  /* Not enrolled yet; then a metered network refuses before contacting anyone. */
  {
    fedlora_policy p = night_policy();
    fedlora_participation_init(&refused);
    CHECK_STATUS(fedlora_participate(dev[0], &coordinator, &p, &refused), FEDLORA_NOT_FOUND);
    CHECK(contains(fedlora_last_error(), "fedlora_enroll"));
  }
  CHECK_STATUS(fedlora_enroll(dev[0], &coordinator, argv[5]), FEDLORA_OK);
  CHECK_STATUS(fedlora_enroll(dev[1], &coordinator, argv[6]), FEDLORA_OK);
  CHECK_STATUS(fedlora_enroll(dev[1], &coordinator, argv[6]), FEDLORA_ALREADY_EXISTS);
  metered = night_policy();
  metered.unmetered = 0;
  fedlora_participation_init(&refused);
  CHECK_STATUS(fedlora_participate(dev[0], &coordinator, &metered, &refused),
               FEDLORA_REFUSED_BY_POLICY);
  CHECK(contains(fedlora_last_error(), "metered"));
  CHECK(contains(refused.stopped_because, "metered"));
  CHECK(refused.bytes_sent == 0 && refused.completed == 0);

  /* Both devices take part in one secure-aggregation round, then install release 1. */
  for (i = 0; i < 2; ++i) {
    jobs[i].rt = dev[i];
    pthread_create(&threads[i], NULL, participate_thread, &jobs[i]);
  }
  for (i = 0; i < 2; ++i) pthread_join(threads[i], NULL);
  for (i = 0; i < 2; ++i) {
    if (jobs[i].status != FEDLORA_OK) {
      fprintf(stderr, "device %d: %s: %s\n", i, fedlora_status_name(jobs[i].status),
              jobs[i].error);
      ++failures;
      continue;
    }
    printf("device %d: %d round(s) completed (round %llu), epsilon %.3f, sent %llu bytes, "
           "release %s -> v%llu (%s)\n",
           i, jobs[i].out.completed, (unsigned long long)jobs[i].out.last_round,
           jobs[i].out.epsilon, (unsigned long long)jobs[i].out.bytes_sent,
           jobs[i].out.release_action, (unsigned long long)jobs[i].out.release_version,
           jobs[i].out.stopped_because);
    CHECK(jobs[i].out.completed == 1);
    CHECK(jobs[i].out.epsilon > 0);
    CHECK(jobs[i].out.bytes_sent > 0);
    CHECK(strcmp(jobs[i].out.release_action, "installed") == 0);
    CHECK(jobs[i].out.release_version == 1);
    /* The device's own ledger: the round is charged without amplification. */
    CHECK(jobs[i].out.device_epsilon > 0);
    CHECK(jobs[i].out.device_epsilon <= jobs[i].out.device_epsilon_budget);
    {
      fedlora_privacy priv;
      fedlora_privacy_init(&priv);
      CHECK_STATUS(fedlora_privacy_spent(dev[i], NULL, &priv), FEDLORA_OK);
      printf("device %d: own epsilon %.3f of budget %.1f at delta %g over %d round(s)\n", i,
             priv.epsilon_spent, priv.epsilon_budget, priv.delta, priv.rounds_charged);
      CHECK(priv.rounds_charged == 1);
      CHECK(priv.epsilon_spent == jobs[i].out.device_epsilon);
      CHECK(priv.epsilon_budget == 8 && priv.delta == 1e-5);
      CHECK(priv.coordinator_epsilon == jobs[i].out.epsilon);
    }
  }
  CHECK_STATUS(fedlora_runtime_release(dev[0], &version), FEDLORA_OK);
  CHECK(version == 1);
  {
    /* The coordinator served the operator's signed timestamp; the device checked and kept it. */
    char path[1200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/device0/release-timestamp.json", work_dir);
    CHECK(stat(path, &st) == 0);
  }
  CHECK_STATUS(fedlora_suggest(dev[0], "meet me at the", 3, strip, &n), FEDLORA_OK);
  CHECK(n == 3);
  check_suggest_during_stalled_round(dev[1]);
  check_suggest_during_training(dev[1]);

  /* Forget: the store is emptied and the personal adapter is gone; training has nothing. */
  CHECK_STATUS(fedlora_forget(dev[0]), FEDLORA_OK);
  CHECK_STATUS(fedlora_store_size(dev[0], &entries, NULL), FEDLORA_OK);
  CHECK(entries == 0);
  {
    /* No store on disk until the next observe: the app may reopen with a new store key. */
    char path[1200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/device0/text/text.fls", work_dir);
    CHECK(stat(path, &st) != 0);
  }
  fedlora_budget_init(&budget);
  policy = night_policy();
  fedlora_train_result_init(&trained);
  CHECK_STATUS(fedlora_train(dev[0], &budget, &policy, &trained), FEDLORA_FAILED_PRECONDITION);
  CHECK_STATUS(fedlora_observe(dev[0], "a new line after forgetting"), FEDLORA_OK);

  CHECK_STATUS(fedlora_runtime_close(dev[0]), FEDLORA_OK);
  check_close_waits_for_calls(dev[1]);
  check_forget_then_new_key(model_dir, work_dir);
  check_release_config(model_dir, work_dir);
  /* The installed release survives a restart. */
  dev[0] = open_device("device0", trusted);
  if (dev[0] != NULL) {
    CHECK_STATUS(fedlora_runtime_release(dev[0], &version), FEDLORA_OK);
    CHECK(version == 1);
    fedlora_runtime_close(dev[0]);
  }
  if (failures == 0) printf("capi cycle: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
