/* fedlora.h: the device runtime for apps, as a C API (C11; libfedlora.so).
 *
 * An app (a keyboard, an assistant) links libfedlora and drives one device's life:
 *
 *   fedlora_config cfg;  fedlora_config_init(&cfg);
 *   cfg.model_dir = "/data/app/base";  cfg.state_dir = "/data/app/fedlora";
 *   fedlora_runtime* rt;
 *   if (fedlora_runtime_open(&cfg, &rt) != FEDLORA_OK) log(fedlora_last_error());
 *   fedlora_observe(rt, "see you at the cafe");            // typed text, encrypted at rest
 *   fedlora_suggest(rt, "see you at the", 3, strip, &n);   // the suggestion strip
 *   fedlora_participate(rt, &coordinator, &policy, &out);  // when charging, idle, on Wi-Fi
 *   fedlora_runtime_close(rt);
 *
 * Every call returns a status (FEDLORA_OK = 0, else a fedlora_status code) and, on failure,
 * fedlora_last_error() gives a message for this thread that says what is wrong and what to
 * do; only the fedlora_*_init functions, which fill a struct with defaults, and the version
 * and message getters return nothing else. No call aborts the process on bad input.
 *
 * Threads: calls on one runtime are serialized by the runtime, except that fedlora_train and
 * fedlora_participate train (and talk to the coordinator) on a model of their own, so a
 * suggest or observe from another thread does not wait for training or a round; different
 * runtimes run in parallel. fedlora_runtime_close waits for the calls in progress; calls that start while it
 * waits, or after it, return FEDLORA_FAILED_PRECONDITION / FEDLORA_INVALID_ARGUMENT.
 *
 * ABI (docs/capi.md, "Stability"): FEDLORA_ABI_VERSION is the soname's number
 * (libfedlora.so.1). Within one ABI version functions are only added, never changed or
 * removed; every struct passed in starts with struct_size and only grows at its end; callers
 * fill structs with the matching fedlora_*_init, so a newer library reads an older app's
 * struct (fields past struct_size take their defaults). Output structs are written only up to
 * the struct_size the caller set. fedlora_abi_version() tells the library's ABI at run time.
 */
#ifndef FEDLORA_H_
#define FEDLORA_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FEDLORA_API __attribute__((visibility("default")))
#else
#define FEDLORA_API
#endif

#define FEDLORA_ABI_VERSION 1

/* Status codes: the canonical codes of gRPC / Abseil, plus one of fedlora's own. */
typedef enum fedlora_status {
  FEDLORA_OK = 0,
  FEDLORA_CANCELLED = 1,
  FEDLORA_UNKNOWN = 2,
  FEDLORA_INVALID_ARGUMENT = 3,     /* a bad argument or file; the message names it */
  FEDLORA_DEADLINE_EXCEEDED = 4,
  FEDLORA_NOT_FOUND = 5,            /* a missing file or folder; not enrolled yet */
  FEDLORA_ALREADY_EXISTS = 6,       /* enrolling an enrolled state folder */
  FEDLORA_PERMISSION_DENIED = 7,    /* the coordinator refused (a used enrolment token) */
  FEDLORA_RESOURCE_EXHAUSTED = 8,   /* a full disk */
  FEDLORA_FAILED_PRECONDITION = 9,  /* e.g. nothing observed yet; a task refused */
  FEDLORA_ABORTED = 10,
  FEDLORA_OUT_OF_RANGE = 11,
  FEDLORA_UNIMPLEMENTED = 12,
  FEDLORA_INTERNAL = 13,
  FEDLORA_UNAVAILABLE = 14,         /* the coordinator cannot be reached: try again later */
  FEDLORA_DATA_LOSS = 15,           /* a corrupt or tampered file (the text store, a download) */
  FEDLORA_UNAUTHENTICATED = 16,
  /* The device policy says no (not charging, metered network, in use, low battery): nothing
   * was trained or sent; fedlora_last_error() names every unmet rule. Not a failure. */
  FEDLORA_REFUSED_BY_POLICY = 100
} fedlora_status;

/* The library's ABI version (FEDLORA_ABI_VERSION it was built with) and release version. */
FEDLORA_API int fedlora_abi_version(void);
FEDLORA_API const char* fedlora_version(void);
/* The message of this thread's last failed call ("" if none); valid until this thread's next
 * fedlora call. Never contains the user's text or key material. */
FEDLORA_API const char* fedlora_last_error(void);
/* "OK", "INVALID_ARGUMENT", ..., "REFUSED_BY_POLICY"; "?" for an unknown code. */
FEDLORA_API const char* fedlora_status_name(int status);

typedef struct fedlora_runtime fedlora_runtime; /* opaque */

typedef struct fedlora_config {
  size_t struct_size;          /* sizeof(fedlora_config); set by fedlora_config_init */
  const char* model_dir;       /* the base model: float (config.json, *.safetensors,
                                  tokenizer.model) or compressed (`fedlora compress`) */
  const char* state_dir;       /* this device's folder: identity, text store, releases,
                                  personal adapter; created 0700 if missing */
  int threads;                 /* compute threads; 0 = all cores (default 0) */
  /* The text store's key: 32 bytes from the platform key store (Android Keystore, iOS
   * Keychain), or NULL to keep it in <state>/text.key (0600). The bytes are copied. */
  const uint8_t* store_key;
  size_t store_key_len;        /* 32 when store_key is set */
  int retention_days;          /* typed text older than this is dropped (default 30; 0 keeps) */
  int64_t max_text_bytes;      /* oldest text dropped beyond this (default 4 MiB; 0 = no cap) */
  /* Release public keys this device trusts (files written by `fedlora keys new`), as a
   * NULL-terminated array, or NULL: then fedlora_participate does not update releases. */
  const char* const* trusted_release_keys;
  /* Release key ids this device refuses even while their public key is listed above (a
   * compromised key): the 16 lower-case hex characters of KEY.pub's third field, as a
   * NULL-terminated array, or NULL. A release or rollback signed by one is refused. */
  const char* const* revoked_release_keys;
  /* The device's release segment (NULL = "global"): a release made for another segment is
   * refused, whatever the coordinator offers. [A-Za-z0-9._-], at most 64 characters. */
  const char* release_segment;
} fedlora_config;
FEDLORA_API void fedlora_config_init(fedlora_config* config);

/* Loads the base model and tokenizer, the installed release's adapter (<state>/release.json)
 * and the personal adapter (<state>/personal), and opens the encrypted text store. Errors:
 * NOT_FOUND / INVALID_ARGUMENT naming the file at fault; DATA_LOSS for a tampered store;
 * FAILED_PRECONDITION for a key file others can read. *out is NULL on failure. */
FEDLORA_API int fedlora_runtime_open(const fedlora_config* config, fedlora_runtime** out);
/* Refuses new calls on `rt` (FEDLORA_FAILED_PRECONDITION "being closed"), waits for every
 * call in progress on it, including those waiting for its lock, then frees everything and
 * wipes the key bytes. NULL is allowed (FEDLORA_OK); a runtime closed already gives
 * FEDLORA_INVALID_ARGUMENT, as does any later call with it. */
FEDLORA_API int fedlora_runtime_close(fedlora_runtime* rt);
/* The installed release's version (0 = none: the base model alone). */
FEDLORA_API int fedlora_runtime_release(fedlora_runtime* rt, uint64_t* version);

#define FEDLORA_MAX_WORD_BYTES 64
typedef struct fedlora_suggestion {
  char word[FEDLORA_MAX_WORD_BYTES];  /* UTF-8, NUL-terminated (cut at a character boundary) */
  double log_prob;                    /* log-probability of the whole word */
} fedlora_suggestion;
/* The k most likely next words after `prefix` (the suggestion strip) into out[0..k-1]: the k
 * most likely word-starting tokens, in that order, each completed greedily to a whole word;
 * *n gets how many were found (<= k). k in 1..16. */
FEDLORA_API int fedlora_suggest(fedlora_runtime* rt, const char* prefix, int k,
                                fedlora_suggestion* out, int* n);

/* Appends what the user typed to the local text store (AES-256-GCM; never sent). Retention
 * applies at once. INVALID_ARGUMENT for empty text or text over max_text_bytes. */
FEDLORA_API int fedlora_observe(fedlora_runtime* rt, const char* text);
/* How many entries and text bytes the store holds now. */
FEDLORA_API int fedlora_store_size(fedlora_runtime* rt, int64_t* entries, int64_t* bytes);
/* Erases the text store (overwritten, then removed, with its key file) and the personal
 * adapter trained from it. The runtime stays open with an empty store and suggests from the
 * base and the release again. No store exists on disk until the next fedlora_observe, which
 * writes under the key the runtime holds: to change an app-supplied store_key, call
 * fedlora_rekey_store before observing again (or close, and open with the new key); then
 * delete the old key from the key store (it is never needed again). */
FEDLORA_API int fedlora_forget(fedlora_runtime* rt);
/* Binds the runtime's empty text store to a new 32-byte key (from the platform key store),
 * right after fedlora_forget and before the next fedlora_observe: the app may then delete the
 * old key at once. The bytes are copied. FAILED_PRECONDITION when the store holds text (forget
 * first); INVALID_ARGUMENT for a key that is not 32 bytes. */
FEDLORA_API int fedlora_rekey_store(fedlora_runtime* rt, const uint8_t* key, size_t key_len);

/* The device policy: what the device is doing now (the app reads it from the OS) and the
 * rules. fedlora_policy_init leaves the conditions 0 ("not known"), so a runtime refuses until
 * the app fills them in; the rules default to those of production keyboards. */
typedef struct fedlora_policy {
  size_t struct_size;
  int charging;              /* 1 = on external power */
  int unmetered;             /* 1 = Wi-Fi or another network the user does not pay per byte */
  int idle;                  /* 1 = screen off / not in use */
  int battery_percent;       /* 0..100 */
  int require_charging;      /* default 1 */
  int require_unmetered;     /* default 1 (fedlora_participate only: training sends nothing) */
  int require_idle;          /* default 1 */
  int min_battery_percent;   /* default 20 */
  double min_noise_multiplier; /* refuse tasks whose composed noise (the values' and the
                                  clipped count's) is weaker (default 0.3) */
  int rounds;                /* fedlora_participate: rounds to complete (default 1) */
  double max_seconds;        /* fedlora_participate: give up after this long (default 600) */
  /* This device's own epsilon against the coordinator (and anyone who sees its masked input
   * unmasked), without amplification by sampling: a task that would take the device's ledger
   * (<state>/privacy-ledger.jsonl) past epsilon_budget at delta is declined before training
   * (default 8 at 1e-5; docs/device.md says why). */
  double epsilon_budget;
  double delta;
} fedlora_policy;
FEDLORA_API void fedlora_policy_init(fedlora_policy* policy);

typedef struct fedlora_budget {
  size_t struct_size;
  int max_steps;       /* default 20 */
  double max_seconds;  /* stop after the step that crosses this; 0 = no time limit (default) */
} fedlora_budget;
FEDLORA_API void fedlora_budget_init(fedlora_budget* budget);

typedef struct fedlora_train_result {
  size_t struct_size;
  int steps;
  double first_loss;
  double last_loss;
  double seconds;
} fedlora_train_result;
FEDLORA_API void fedlora_train_result_init(fedlora_train_result* result);

/* Local training, within `budget`: a private rank-4 adapter (<state>/personal) trained on the
 * store's text over the installed release, then used by fedlora_suggest. Nothing is sent.
 * REFUSED_BY_POLICY when `policy` says no; FAILED_PRECONDITION when nothing was observed;
 * ABORTED (nothing kept) when fedlora_forget ran on another thread meanwhile. */
FEDLORA_API int fedlora_train(fedlora_runtime* rt, const fedlora_budget* budget,
                              const fedlora_policy* policy, fedlora_train_result* out);

typedef struct fedlora_coordinator {
  size_t struct_size;
  const char* address;      /* host:port */
  const char* ca_pem_path;  /* the CA that signed the coordinator's TLS certificate */
  const char* server_name;  /* TLS name to check, when not the host of `address` */
  int insecure;             /* 1 = plaintext, refused unless `address` is loopback (tests) */
  double timeout_seconds;   /* per call (default 60) */
} fedlora_coordinator;
FEDLORA_API void fedlora_coordinator_init(fedlora_coordinator* coordinator);

/* Generates this device's Ed25519 key (<state>/device.key, 0600) and enrols it with a
 * single-use token. ALREADY_EXISTS when the state folder is enrolled. */
FEDLORA_API int fedlora_enroll(fedlora_runtime* rt, const fedlora_coordinator* coordinator,
                               const char* token);

#define FEDLORA_MAX_REASON_BYTES 256
typedef struct fedlora_participation {
  size_t struct_size;
  int completed;               /* rounds whose committed sum includes this device's update */
  uint64_t last_round;
  /* The coordinator's claim: the run's epsilon once the last completed round is charged,
   * amplified by sampling, so it holds only against observers of released adapters. */
  double epsilon;
  double delta;
  uint64_t bytes_sent;         /* everything this call sent to the coordinator */
  uint64_t bytes_received;
  uint64_t release_version;    /* the release running after this call (0 = none) */
  char release_action[32];     /* "kept", "installed", "rolled back", "fell back", "" (none) */
  char stopped_because[FEDLORA_MAX_REASON_BYTES];
  /* This device's own epsilon against the coordinator after this call, at policy->delta,
   * and the budget it enforces (fedlora_privacy_spent gives the same at any time). */
  double device_epsilon;
  double device_epsilon_budget;
} fedlora_participation;
FEDLORA_API void fedlora_participation_init(fedlora_participation* out);

/* One check-in: if the policy allows it, take part in up to policy->rounds rounds (download
 * the global adapter, train on the store's text, clip, add the distributed discrete Gaussian
 * noise, and run secure aggregation: only the masked, noised update leaves the device), then,
 * when trusted_release_keys were given, ask for the current release and install it if it is
 * offered and its signature, base and files verify. REFUSED_BY_POLICY (nothing contacted) when
 * the policy says no; NOT_FOUND before fedlora_enroll; UNAVAILABLE when the coordinator
 * cannot be reached (try later). A round the coordinator aborts is not an error. */
FEDLORA_API int fedlora_participate(fedlora_runtime* rt, const fedlora_coordinator* coordinator,
                                    const fedlora_policy* policy, fedlora_participation* out);

/* This device's own privacy ledger: every round it took part in, charged before its masked
 * input left the device, composed without amplification by sampling. */
typedef struct fedlora_privacy {
  size_t struct_size;
  /* Against the coordinator and anyone who sees this device's masked input unmasked. */
  double epsilon_spent;
  double epsilon_budget; /* policy->epsilon_budget */
  double delta;          /* policy->delta */
  int rounds_charged;
  /* The coordinator's claim after the last charged round: against observers of released
   * adapters only (amplified by sampling). 0 when no round was charged. */
  double coordinator_epsilon;
  double coordinator_delta;
} fedlora_privacy;
FEDLORA_API void fedlora_privacy_init(fedlora_privacy* out);
/* Reads the ledger; `policy` (NULL: the defaults) gives the budget and delta. DATA_LOSS for a
 * damaged ledger (the device then declines every task); INVALID_ARGUMENT for a bad budget or
 * delta. */
FEDLORA_API int fedlora_privacy_spent(fedlora_runtime* rt, const fedlora_policy* policy,
                                      fedlora_privacy* out);

/* Reports the device's state now (the charging, unmetered, idle and battery_percent fields of
 * `now`; its rules are ignored), e.g. from the OS's power and network callbacks, on any
 * thread. A fedlora_participate in progress on `rt` checks the latest state before every
 * check-in and before the release update, and stops when its policy's rules no longer hold
 * (FEDLORA_OK, stopped_because "device conditions: not charging"). A round already
 * training finishes its round. Never waits for a suggest or a round. */
FEDLORA_API int fedlora_set_conditions(fedlora_runtime* rt, const fedlora_policy* now);

#ifdef __cplusplus
}
#endif

#endif /* FEDLORA_H_ */
