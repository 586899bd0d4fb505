# Is an int8 GEMM (libtorch 1.13's dynamic quantized linear, onednn / qnnpack engines) faster
# than the float32 GEMM our frozen layers use (dequantize, then at::linear)?
import time, torch
torch.set_num_threads(2)
def best(f, reps=20):
    f(); t = []
    for _ in range(reps):
        a = time.perf_counter(); f(); t.append(time.perf_counter() - a)
    return min(t)
shapes = [(512, 512, 512), (512, 512, 1368), (512, 1368, 512), (2048, 512, 1368)]
for engine in ['onednn', 'qnnpack']:
    torch.backends.quantized.engine = engine
    for (M, K, N) in shapes:
        x = torch.randn(M, K); w = torch.randn(N, K) * 0.02
        scales = w.abs().amax(1) / 127
        qw = torch.quantize_per_channel(w, scales, torch.zeros(N, dtype=torch.long), 0, torch.qint8)
        q = torch.ao.nn.quantized.dynamic.Linear(K, N, bias_=False, dtype=torch.qint8)
        try:
            q.set_weight_bias(qw, None)
        except Exception as e:
            print(engine, 'set_weight_bias failed:', e); break
        f32 = best(lambda: torch.nn.functional.linear(x, w))
        deq = best(lambda: torch.nn.functional.linear(x, qw.dequantize()))
        i8 = best(lambda: q(x))
        err = (q(x) - torch.nn.functional.linear(x, qw.dequantize())).abs().max().item()
        print(f'{engine:8s} M={M:5d} K={K:5d} N={N:5d}  f32 {2*M*K*N/f32/1e9:6.1f} GFLOP/s  '
              f'dequant+f32 {2*M*K*N/deq/1e9:6.1f}  int8-dynamic {2*M*K*N/i8/1e9:6.1f}  '
              f'(int8/f32 {f32/i8:.2f}x, max abs diff {err:.2e})')
