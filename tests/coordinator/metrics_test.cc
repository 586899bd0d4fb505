#include "fedlora/coordinator/metrics.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "fedlora/coordinator/metrics_http.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

TEST(MetricsRegistryTest, RendersExactText) {
  MetricsRegistry r;
  r.DefineCounter("test_requests_total", "Requests, by \"method\".\nSecond line \\ end",
                  {"method", "code"});
  r.DefineGauge("test_temperature", "Temperature.");
  r.DefineHistogram("test_latency_seconds", "Latency.", {0.125, 1, 2.5}, {"path"});
  r.DefineCounter("a_first_total", "Defined last, rendered first.");
  r.DefineCounter("empty_total", "No series yet.", {"reason"});

  r.Increment("test_requests_total", {"GET", "200"});
  r.Increment("test_requests_total", {"GET", "200"}, 2);
  r.Increment("test_requests_total", {"say \"hi\"\n\\", "500"});
  r.Set("test_temperature", -1.5);
  for (double v : {0.0625, 0.125, 0.5, 3.0}) r.Observe("test_latency_seconds", v, {"/a"});

  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP a_first_total Defined last, rendered first.\n"
            "# TYPE a_first_total counter\n"
            "a_first_total 0\n"
            "# HELP empty_total No series yet.\n"
            "# TYPE empty_total counter\n"
            "# HELP test_latency_seconds Latency.\n"
            "# TYPE test_latency_seconds histogram\n"
            "test_latency_seconds_bucket{path=\"/a\",le=\"0.125\"} 2\n"
            "test_latency_seconds_bucket{path=\"/a\",le=\"1\"} 3\n"
            "test_latency_seconds_bucket{path=\"/a\",le=\"2.5\"} 3\n"
            "test_latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 4\n"
            "test_latency_seconds_sum{path=\"/a\"} 3.6875\n"
            "test_latency_seconds_count{path=\"/a\"} 4\n"
            "# HELP test_requests_total Requests, by \"method\".\\nSecond line \\\\ end\n"
            "# TYPE test_requests_total counter\n"
            "test_requests_total{method=\"GET\",code=\"200\"} 3\n"
            "test_requests_total{method=\"say \\\"hi\\\"\\n\\\\\",code=\"500\"} 1\n"
            "# HELP test_temperature Temperature.\n"
            "# TYPE test_temperature gauge\n"
            "test_temperature -1.5\n");
}

TEST(MetricsRegistryTest, UnlabeledHistogramStartsAtZeroAndNumbersReadBack) {
  MetricsRegistry r;
  r.DefineHistogram("h", "H.", {1, std::numeric_limits<double>::infinity()});
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP h H.\n# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");

  r.DefineGauge("g", "G.", {"k"});
  const std::vector<std::pair<double, std::string>> cases = {
      {0.1, "0.1"},
      {123456789012.0, "123456789012"},
      {1e21, "1e+21"},
      {1.0 / 3, "0.3333333333333333"},
      {-0.0, "-0"},
      {std::numeric_limits<double>::infinity(), "+Inf"},
      {-std::numeric_limits<double>::infinity(), "-Inf"},
      {std::nan(""), "NaN"},
  };
  for (const auto& [value, text] : cases) {
    r.Set("g", value, {"x"});
    EXPECT_THAT(r.RenderPrometheus(), HasSubstr(absl::StrCat("g{k=\"x\"} ", text, "\n")))
        << "value " << value;
  }
}

TEST(MetricsRegistryTest, ValueAndRedefinition) {
  MetricsRegistry r;
  r.DefineCounter("c_total", "C.", {"k"});
  r.DefineCounter("c_total", "C.", {"k"});  // identical: no-op, keeps values
  EXPECT_EQ(r.Value("c_total", {"unseen"}), 0);
  r.Increment("c_total", {"a"}, 2.5);
  r.DefineCounter("c_total", "C.", {"k"});
  EXPECT_EQ(r.Value("c_total", {"a"}), 2.5);
  r.DefineGauge("g", "G.");
  r.Increment("g", {}, -4);
  EXPECT_EQ(r.Value("g"), -4);
  r.Set("g", 7);
  EXPECT_EQ(r.Value("g"), 7);
}

TEST(MetricsRegistryDeathTest, ProgrammerErrorsAbort) {
  MetricsRegistry r;
  r.DefineCounter("c_total", "C.", {"k"});
  r.DefineHistogram("h", "H.", {1});
  EXPECT_DEATH(r.DefineCounter("1bad", "x"), "does not match");
  EXPECT_DEATH(r.DefineGauge("bad-name", "x"), "does not match");
  EXPECT_DEATH(r.DefineGauge("ok", "x", {"__reserved"}), "label name");
  EXPECT_DEATH(r.DefineHistogram("h2", "x", {1}, {"le"}), "reserved");
  EXPECT_DEATH(r.DefineHistogram("h3", "x", {2, 1}), "strictly increasing");
  EXPECT_DEATH(r.DefineGauge("c_total", "C.", {"k"}), "defined twice");
  EXPECT_DEATH(r.Increment("c_total", {}), "0 label values for labels \\[k\\]");
  EXPECT_DEATH(r.Increment("c_total", {"a"}, -1), "negative");
  EXPECT_DEATH(r.Increment("nope_total"), "not defined");
  EXPECT_DEATH(r.Set("c_total", 1, {"a"}), "not a gauge");
  EXPECT_DEATH(r.Observe("c_total", 1, {"a"}), "not a histogram");
  EXPECT_DEATH(r.Value("h"), "histogram");
}

TEST(MetricsRegistryTest, ConcurrentUpdatesSumExactly) {
  MetricsRegistry r;
  r.DefineCounter("c_total", "C.", {"worker_parity"});
  r.DefineHistogram("h", "H.", {0.5}, {"k"});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::atomic<bool> stop_render{false};
  std::thread renderer([&] {
    while (!stop_render.load()) r.RenderPrometheus();
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r, t] {
      const std::vector<std::string> labels = {t % 2 == 0 ? "even" : "odd"};
      const std::vector<std::string> own = {absl::StrCat("w", t)};  // new series under load
      for (int i = 0; i < kPerThread; ++i) {
        r.Increment("c_total", labels);
        r.Observe("h", i % 2 == 0 ? 0.25 : 1.0, own);
      }
    });
  }
  for (auto& th : threads) th.join();
  stop_render.store(true);
  renderer.join();
  EXPECT_EQ(r.Value("c_total", {"even"}), kThreads / 2 * kPerThread);
  EXPECT_EQ(r.Value("c_total", {"odd"}), kThreads / 2 * kPerThread);
  const std::string text = r.RenderPrometheus();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("h_bucket{k=\"w", t, "\",le=\"0.5\"} ", kPerThread / 2,
                                             "\n")));
    EXPECT_THAT(text, HasSubstr(absl::StrCat("h_count{k=\"w", t, "\"} ", kPerThread, "\n")));
    EXPECT_THAT(text,
                HasSubstr(absl::StrCat("h_sum{k=\"w", t, "\"} ", kPerThread / 2 * 1.25, "\n")));
  }
}

TEST(MetricsRegistryTest, CoordinatorFamiliesDefinedOnce) {
  MetricsRegistry r;
  DefineCoordinatorMetrics(r);
  DefineCoordinatorMetrics(r);  // idempotent
  EXPECT_EQ(r.Value(kMetricRoundsTotal, {"committed"}), 0);
  r.Increment(kMetricRoundsTotal, {"committed"});
  r.Observe(kMetricRoundPhaseSeconds, 12, {"masked_input"});
  r.Increment(kMetricRpcErrorsTotal, {"CheckIn", "UNAVAILABLE"});
  r.Increment(kMetricBytesReceivedTotal, {"Upload"}, 4096);
  r.Set(kMetricEpsilon, 2.5);
  const std::string text = r.RenderPrometheus();
  for (const char* family :
       {kMetricRoundsTotal, kMetricRoundPhaseSeconds, kMetricDeviceDropsTotal, kMetricCheckinsTotal,
        kMetricRejectionsTotal, kMetricEnrolledDevices, kMetricEpsilon, kMetricAdapterVersion,
        kMetricRpcErrorsTotal, kMetricBytesReceivedTotal, kMetricBytesSentTotal}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", family, " "))) << family;
  }
  EXPECT_THAT(text, HasSubstr("fedlora_rounds_total{outcome=\"aborted\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("fedlora_rounds_total{outcome=\"committed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fedlora_checkins_total{result=\"rejected\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("fedlora_round_phase_seconds_count{phase=\"masked_input\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("fedlora_rpc_errors_total{method=\"CheckIn\",code=\"UNAVAILABLE\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fedlora_epsilon 2.5\n"));
}

TEST(MetricsHttpServerTest, ServesMetricsHealthzAnd404OverLoopback) {
  MetricsRegistry r;
  r.DefineCounter("served_total", "S.", {"k"});
  r.Increment("served_total", {"a"});
  auto server = MetricsHttpServer::Start(&r, "127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, r.RenderPrometheus());
  EXPECT_THAT(res->body, HasSubstr("served_total{k=\"a\"} 1\n"));
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");

  r.Increment("served_total", {"a"}, 41);  // each scrape renders the current values
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, HasSubstr("served_total{k=\"a\"} 42\n"));

  res = client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok");

  res = client.Get("/nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_THAT(res->body, HasSubstr("/metrics"));

  res = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  EXPECT_EQ(res->get_header_value("Allow"), "GET, HEAD");
}

// ScrapeMetric reads what a MetricsHttpServer serves: a family's series whose labels match, a
// family prefix of another name is not the family, nothing counted yet is 0, no server is
// UNAVAILABLE.
TEST(MetricsHttpServerTest, ScrapeMetricSumsTheMatchingSeriesOfAFamily) {
  MetricsRegistry r;
  r.DefineCounter("shards_total", "S.", {"outcome", "k"});
  r.DefineCounter("shards_total_other", "O.", {"outcome"});
  r.Increment("shards_total", {"summed", "a"}, 3);
  r.Increment("shards_total", {"summed", "b"}, 2);
  r.Increment("shards_total", {"dropped", "a"}, 7);
  r.Increment("shards_total_other", {"summed"}, 100);
  auto server = MetricsHttpServer::Start(&r, "127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  auto summed = ScrapeMetric("127.0.0.1", port, "shards_total", {{"outcome", "summed"}});
  ASSERT_TRUE(summed.ok()) << summed.status();
  EXPECT_EQ(*summed, 5);
  EXPECT_EQ(*ScrapeMetric("127.0.0.1", port, "shards_total"), 12);
  EXPECT_EQ(*ScrapeMetric("127.0.0.1", port, "shards_total", {{"outcome", "refused"}}), 0);
  const int gone = port;
  server->reset();
  EXPECT_EQ(ScrapeMetric("127.0.0.1", gone, "shards_total").status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(MetricsHttpServerTest, SecondServerOnSamePortFailsClearly) {
  MetricsRegistry r;
  auto first = MetricsHttpServer::Start(&r, "127.0.0.1", 0);
  ASSERT_TRUE(first.ok()) << first.status();
  const int port = (*first)->port();
  auto second = MetricsHttpServer::Start(&r, "127.0.0.1", port);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("port ", port, " on 127.0.0.1 is in use")));
  EXPECT_THAT(second.status().message(), HasSubstr("--metrics HOST:PORT"));

  // The first one still serves.
  httplib::Client client("127.0.0.1", port);
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "ok");
}

TEST(MetricsHttpServerTest, RejectsBadArguments) {
  MetricsRegistry r;
  auto bad_port = MetricsHttpServer::Start(&r, "127.0.0.1", 70000);
  EXPECT_EQ(bad_port.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_port.status().message(), HasSubstr("0..65535"));
  auto no_registry = MetricsHttpServer::Start(nullptr, "127.0.0.1", 0);
  EXPECT_EQ(no_registry.status().code(), absl::StatusCode::kInvalidArgument);
  auto not_local = MetricsHttpServer::Start(&r, "192.0.2.1", 0);  // TEST-NET-1, not ours
  ASSERT_FALSE(not_local.ok());
  EXPECT_EQ(not_local.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(not_local.status().message(), HasSubstr("--metrics 127.0.0.1:PORT"));
}

TEST(MetricsHttpServerTest, StartsAndStopsQuicklyAndFreesThePort) {
  MetricsRegistry r;
  int port = 0;
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    auto server = MetricsHttpServer::Start(&r, "127.0.0.1", port);  // same port after the first
    ASSERT_TRUE(server.ok()) << "iteration " << i << ": " << server.status();
    port = (*server)->port();
    if (i % 5 == 0) {
      httplib::Client client("127.0.0.1", port);
      auto res = client.Get("/healthz");
      ASSERT_TRUE(res) << "iteration " << i;
      EXPECT_EQ(res->body, "ok");
    }
  }  // each destructor stops and joins before the next Start binds the same port
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  EXPECT_LT(seconds, 10.0);

  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  EXPECT_FALSE(client.Get("/healthz")) << "nothing should listen after the destructor";
}

}  // namespace
}  // namespace fedlora::coordinator
