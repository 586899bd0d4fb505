/* Hardening checks of the C API (issue 31), included by capi_cycle_test.c (one C program per
 * ctest entry): suggestions do not wait behind a round that is stuck on the network, a round
 * stops when the app reports the device unplugged, and fedlora_runtime_close waits for calls
 * in progress while new ones are refused.
 *
 * The "stalled coordinator" is a loopback socket that accepts connections and never answers:
 * every gRPC call on it runs into its deadline. */
#ifndef FEDLORA_TESTS_CAPI_HARDENING_H_
#define FEDLORA_TESTS_CAPI_HARDENING_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_seconds(double s) {
  struct timespec ts;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  nanosleep(&ts, NULL);
}

struct stall_server {
  int listen_fd;
  int fds[64];
  int n;
  char address[64];
  pthread_t thread;
};

static void* stall_accept(void* arg) {
  struct stall_server* s = (struct stall_server*)arg;
  for (;;) {
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0) return NULL; /* shut down */
    if (s->n < 64) s->fds[s->n++] = fd; /* held open, never read or answered */
    else close(fd);
  }
}

static int stall_start(struct stall_server* s) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  memset(s, 0, sizeof(*s));
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr*)&a, sizeof(a)) != 0 ||
      listen(s->listen_fd, 16) != 0 || getsockname(s->listen_fd, (struct sockaddr*)&a, &len) != 0) {
    return 0;
  }
  snprintf(s->address, sizeof(s->address), "127.0.0.1:%d", ntohs(a.sin_port));
  return pthread_create(&s->thread, NULL, stall_accept, s) == 0;
}

static void stall_stop(struct stall_server* s) {
  int i;
  shutdown(s->listen_fd, SHUT_RDWR);
  close(s->listen_fd);
  pthread_join(s->thread, NULL);
  for (i = 0; i < s->n; ++i) close(s->fds[i]);
}

struct stalled_round {
  fedlora_runtime* rt;
  fedlora_coordinator coordinator;
  double max_seconds;
  int status;
  double ended;
  fedlora_participation out;
};

static void* stalled_round_thread(void* arg) {
  struct stalled_round* job = (struct stalled_round*)arg;
  fedlora_policy p = night_policy();
  p.max_seconds = job->max_seconds;
  fedlora_participation_init(&job->out);
  job->status = fedlora_participate(job->rt, &job->coordinator, &p, &job->out);
  job->ended = now_seconds();
  return NULL;
}

static void start_stalled_round(struct stalled_round* job, fedlora_runtime* rt,
                                const struct stall_server* s, double max_seconds,
                                pthread_t* thread) {
  job->rt = rt;
  fedlora_coordinator_init(&job->coordinator);
  job->coordinator.address = s->address;
  job->coordinator.insecure = 1;
  job->coordinator.timeout_seconds = 1;
  job->max_seconds = max_seconds;
  job->status = -1;
  pthread_create(thread, NULL, stalled_round_thread, job);
}

static int compare_doubles(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* A round blocked on a coordinator that never answers: the keyboard's suggestions from
 * another thread stay fast (p95 well under the round's length), and unplugging the phone
 * (fedlora_set_conditions) stops the round at its next phase. */
static void check_suggest_during_stalled_round(fedlora_runtime* rt) {
  struct stall_server s;
  struct stalled_round job;
  pthread_t thread;
  fedlora_suggestion strip[3];
  fedlora_policy unplugged = night_policy();
  double lat[40], unplugged_at;
  int i, n = 0;
  if (!stall_start(&s)) {
    CHECK(!"cannot start the stalled coordinator");
    return;
  }
  start_stalled_round(&job, rt, &s, 60, &thread);
  sleep_seconds(0.5); /* the round is waiting for the coordinator now */
  for (i = 0; i < 40; ++i) {
    const double t0 = now_seconds();
    CHECK_STATUS(fedlora_suggest(rt, "meet me at the", 3, strip, &n), FEDLORA_OK);
    lat[i] = now_seconds() - t0;
    sleep_seconds(0.02);
  }
  qsort(lat, 40, sizeof(lat[0]), compare_doubles);
  printf("suggest during a stalled round: p50 %.1f ms, p95 %.1f ms, max %.1f ms\n",
         lat[20] * 1e3, lat[38] * 1e3, lat[39] * 1e3);
  CHECK(job.status == -1); /* the round was still running throughout */
  CHECK(lat[38] < 0.5);
  CHECK(lat[39] < 1.0); /* not one suggestion waited for the round */
  unplugged.charging = 0;
  unplugged_at = now_seconds();
  CHECK_STATUS(fedlora_set_conditions(rt, &unplugged), FEDLORA_OK);
  pthread_join(thread, NULL);
  printf("round stopped %.1f s after the phone was unplugged: %s\n", job.ended - unplugged_at,
         job.out.stopped_because);
  CHECK_STATUS(job.status, FEDLORA_OK);
  CHECK(contains(job.out.stopped_because, "not charging"));
  CHECK(job.ended - unplugged_at < 10);
  CHECK(job.out.completed == 0);
  stall_stop(&s);
}

struct training_job {
  fedlora_runtime* rt;
  int status;
  fedlora_train_result out;
};

static void* training_thread(void* arg) {
  struct training_job* job = (struct training_job*)arg;
  fedlora_budget budget;
  fedlora_policy p = night_policy();
  fedlora_budget_init(&budget);
  budget.max_steps = 1000000;
  budget.max_seconds = 3;
  fedlora_train_result_init(&job->out);
  job->status = fedlora_train(job->rt, &budget, &p, &job->out);
  return NULL;
}

/* Local training for 3 s on one thread; the keyboard's suggestions on another stay fast. */
static void check_suggest_during_training(fedlora_runtime* rt) {
  struct training_job job;
  pthread_t thread;
  fedlora_suggestion strip[3];
  double lat[40];
  int i, n = 0;
  job.rt = rt;
  job.status = -1;
  pthread_create(&thread, NULL, training_thread, &job);
  sleep_seconds(0.5);
  for (i = 0; i < 40; ++i) {
    const double t0 = now_seconds();
    CHECK_STATUS(fedlora_suggest(rt, "meet me at the", 3, strip, &n), FEDLORA_OK);
    lat[i] = now_seconds() - t0;
    sleep_seconds(0.02);
  }
  qsort(lat, 40, sizeof(lat[0]), compare_doubles);
  CHECK(job.status == -1); /* still training throughout */
  pthread_join(thread, NULL);
  printf("suggest during training (%d steps): p50 %.1f ms, p95 %.1f ms, max %.1f ms\n",
         job.out.steps, lat[20] * 1e3, lat[38] * 1e3, lat[39] * 1e3);
  CHECK_STATUS(job.status, FEDLORA_OK);
  CHECK(lat[39] < 1.0);
}

struct hammer {
  fedlora_runtime* rt;
  int ok_calls;
  int last_status;
};

static void* hammer_thread(void* arg) {
  struct hammer* h = (struct hammer*)arg;
  fedlora_suggestion strip[3];
  int n, status;
  for (;;) {
    status = (h->ok_calls % 2 == 0) ? fedlora_suggest(h->rt, "see you at", 3, strip, &n)
                                    : fedlora_observe(h->rt, "a line typed while closing");
    if (status != FEDLORA_OK) break;
    ++h->ok_calls;
  }
  h->last_status = status;
  return NULL;
}

/* fedlora_runtime_close while a round is in progress and two threads keep calling: close
 * waits for the round, the other calls are refused with a status (not a crash), and the
 * closed pointer is refused afterwards. Closes `rt`. */
static void check_close_waits_for_calls(fedlora_runtime* rt) {
  struct stall_server s;
  struct stalled_round job;
  struct hammer h[2];
  pthread_t round_thread, threads[2];
  double close_started, closed;
  int i;
  if (!stall_start(&s)) {
    CHECK(!"cannot start the stalled coordinator");
    return;
  }
  start_stalled_round(&job, rt, &s, 3, &round_thread);
  for (i = 0; i < 2; ++i) {
    h[i].rt = rt;
    h[i].ok_calls = 0;
    h[i].last_status = -1;
    pthread_create(&threads[i], NULL, hammer_thread, &h[i]);
  }
  sleep_seconds(0.5);
  close_started = now_seconds();
  CHECK_STATUS(fedlora_runtime_close(rt), FEDLORA_OK);
  closed = now_seconds();
  for (i = 0; i < 2; ++i) pthread_join(threads[i], NULL);
  pthread_join(round_thread, NULL);
  printf("close waited %.2f s, until the round's call returned (%+.3f s); calls made "
         "meanwhile: %d and %d\n",
         closed - close_started, closed - job.ended, h[0].ok_calls, h[1].ok_calls);
  /* close waited for the round (2.5 s of its 3 s were left): it returned when the round's call
   * did, give or take the thread switch */
  CHECK(closed - close_started > 1.5);
  CHECK(closed > job.ended - 0.1);
  for (i = 0; i < 2; ++i) {
    CHECK(h[i].last_status == FEDLORA_FAILED_PRECONDITION ||
          h[i].last_status == FEDLORA_INVALID_ARGUMENT);
  }
  CHECK_STATUS(fedlora_store_size(rt, NULL, NULL), FEDLORA_INVALID_ARGUMENT);
  CHECK(contains(fedlora_last_error(), "not open"));
  CHECK_STATUS(fedlora_runtime_close(rt), FEDLORA_INVALID_ARGUMENT);
  stall_stop(&s);
}

static fedlora_runtime* open_with_key(const char* model, const char* state, const uint8_t* key) {
  fedlora_config cfg;
  fedlora_runtime* rt = NULL;
  fedlora_config_init(&cfg);
  cfg.model_dir = model;
  cfg.state_dir = state;
  cfg.threads = 1;
  cfg.store_key = key;
  cfg.store_key_len = 32;
  if (fedlora_runtime_open(&cfg, &rt) != FEDLORA_OK) return NULL;
  return rt;
}

/* An app-supplied store key after fedlora_forget: the store is empty and bound to no key until
 * something is observed; fedlora_rekey_store binds it to a new key, so the app can delete the
 * old key from its key store at once and the next open uses the new key. */
static void check_forget_then_new_key(const char* model, const char* work) {
  char state[1024];
  uint8_t k1[32], k2[32];
  int64_t entries = -1;
  fedlora_runtime* rt;
  memset(k1, 0x11, sizeof(k1));
  memset(k2, 0x22, sizeof(k2));
  snprintf(state, sizeof(state), "%s/rekey", work);
  rt = open_with_key(model, state, k1);
  CHECK(rt != NULL);
  if (rt == NULL) return;
  CHECK_STATUS(fedlora_observe(rt, "under the first key"), FEDLORA_OK);
  CHECK_STATUS(fedlora_rekey_store(rt, k2, 32), FEDLORA_FAILED_PRECONDITION);
  CHECK_STATUS(fedlora_forget(rt), FEDLORA_OK);
  CHECK_STATUS(fedlora_rekey_store(rt, k2, 31), FEDLORA_INVALID_ARGUMENT);
  CHECK_STATUS(fedlora_rekey_store(rt, k2, 32), FEDLORA_OK);
  memset(k1, 0, sizeof(k1)); /* the app deletes the old key from its key store */
  CHECK_STATUS(fedlora_observe(rt, "under the second key"), FEDLORA_OK);
  CHECK_STATUS(fedlora_runtime_close(rt), FEDLORA_OK);
  rt = open_with_key(model, state, k2);
  CHECK(rt != NULL);
  if (rt == NULL) return;
  CHECK_STATUS(fedlora_store_size(rt, &entries, NULL), FEDLORA_OK);
  CHECK(entries == 1);
  CHECK_STATUS(fedlora_runtime_close(rt), FEDLORA_OK);
}

/* The release trust of fedlora_config: revoked key ids and the segment are checked at open. */
static void check_release_config(const char* model, const char* work) {
  char state[1024];
  const char* bad_ids[] = {"not-a-key-id", NULL};
  const char* good_ids[] = {"0123456789abcdef", NULL};
  fedlora_config cfg;
  fedlora_runtime* rt = NULL;
  snprintf(state, sizeof(state), "%s/trustcfg", work);
  fedlora_config_init(&cfg);
  cfg.model_dir = model;
  cfg.state_dir = state;
  cfg.threads = 1;
  cfg.revoked_release_keys = bad_ids;
  CHECK_STATUS(fedlora_runtime_open(&cfg, &rt), FEDLORA_INVALID_ARGUMENT);
  CHECK(contains(fedlora_last_error(), "revoked_release_keys"));
  cfg.revoked_release_keys = good_ids;
  cfg.release_segment = "beta testers";
  CHECK_STATUS(fedlora_runtime_open(&cfg, &rt), FEDLORA_INVALID_ARGUMENT);
  CHECK(contains(fedlora_last_error(), "release_segment"));
  cfg.release_segment = "beta";
  CHECK_STATUS(fedlora_runtime_open(&cfg, &rt), FEDLORA_OK);
  CHECK_STATUS(fedlora_runtime_close(rt), FEDLORA_OK);
}

#endif /* FEDLORA_TESTS_CAPI_HARDENING_H_ */
