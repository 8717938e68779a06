#!/usr/bin/env python3
"""torch_check.py - PyTorch and CuPy through whichever libcuda.so.1 the process loads (NVIDIA's,
or libvgpu's when gpu-check.sh puts it first on LD_LIBRARY_PATH). Prints one JSON object per
result on stdout ({"name", "status", ...}); every exception is caught and reported with its
type, message and the line it came from, and the checks after it still run where they can.

  torch_check.py torch   is_available (with the initialisation error when not), device
                         properties, a matmul against the CPU, 20 training steps of a small MLP
                         with the loss going down
  torch_check.py cupy    a CuPy ElementwiseKernel against NumPy
  torch_check.py bench   time of one training step of a larger MLP (median of 20 steps)
Run with PYTHONUNBUFFERED=1 so that a crash loses nothing already printed."""
import json
import os
import sys
import time
import traceback


def emit(name, status, **kw):
    rec = {"name": name, "status": status}
    rec.update({k: (v if isinstance(v, (int, float, bool)) or v is None else str(v))
                for k, v in kw.items()})
    print(json.dumps(rec), flush=True)


def exc_text(e):
    tb = traceback.extract_tb(e.__traceback__)
    where = f"{os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else "?"
    msg = str(e).strip().replace("\n", " | ")
    return f"{type(e).__name__}: {msg[:1500]} (at {where})"


def libcuda_mapped():
    """Every libcuda file mapped into this process (proves which driver library was used)."""
    seen = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1] if "/" in line else ""
                if "libcuda.so" in p and p not in seen:
                    seen.append(p)
    except OSError:
        pass
    return ",".join(seen) or "none"


def part_torch():
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - every failure is reported, never raised
        emit("torch.import", "fail", error=exc_text(e))
        return 1
    emit("torch.version", "info", torch=torch.__version__, cuda=torch.version.cuda)
    fails = 0
    try:
        ok = torch.cuda.is_available()
        detail = ""
        if not ok:
            # is_available() hides the reason: initialising says it.
            try:
                torch.cuda.init()
                detail = "torch.cuda.init() raised nothing"
            except Exception as e:  # noqa: BLE001
                detail = exc_text(e)
        emit("torch.is_available", "pass" if ok else "fail", value=ok,
             device_count=torch.cuda.device_count() if ok else 0, error=detail or None,
             libcuda=libcuda_mapped())
        if not ok:
            return 1
    except Exception as e:  # noqa: BLE001
        emit("torch.is_available", "fail", error=exc_text(e), libcuda=libcuda_mapped())
        return 1
    try:
        p = torch.cuda.get_device_properties(0)
        emit("torch.device_properties", "pass", device=p.name, total_mib=p.total_memory >> 20,
             cc=f"{p.major}.{p.minor}", sms=p.multi_processor_count)
    except Exception as e:  # noqa: BLE001
        fails += 1
        emit("torch.device_properties", "fail", error=exc_text(e))
    try:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(512, 384, generator=g)
        b = torch.randn(384, 256, generator=g)
        want = a @ b
        got = (a.cuda() @ b.cuda()).cpu()
        err = (got - want).abs().max().item()
        ok = torch.allclose(got, want, rtol=1e-3, atol=1e-3)
        fails += not ok
        emit("torch.matmul_vs_cpu", "pass" if ok else "fail",
             detail=f"512x384 @ 384x256 fp32, max abs error {err:.3g} (rtol/atol 1e-3)")
    except Exception as e:  # noqa: BLE001
        fails += 1
        emit("torch.matmul_vs_cpu", "fail", error=exc_text(e))
    try:
        torch.manual_seed(0)
        dev = torch.device("cuda")
        x = torch.randn(1024, 32, device=dev)
        w_true = torch.randn(32, 1, device=dev)
        y = torch.tanh(x @ w_true) + 0.01 * torch.randn(1024, 1, device=dev)
        model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 1)).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(20):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        ok = losses[-1] < 0.5 * losses[0] and all(v == v for v in losses)
        fails += not ok
        emit("torch.mlp_training", "pass" if ok else "fail",
             detail=f"20 Adam steps, loss {losses[0]:.4f} -> {losses[-1]:.4f} "
                    f"(must at least halve)", losses=",".join(f"{v:.4f}" for v in losses))
    except Exception as e:  # noqa: BLE001
        fails += 1
        emit("torch.mlp_training", "fail", error=exc_text(e))
    emit("torch.libcuda", "info", libcuda=libcuda_mapped())
    return 1 if fails else 0


def part_cupy():
    try:
        import cupy
        import numpy
    except Exception as e:  # noqa: BLE001
        emit("cupy.import", "fail", error=exc_text(e))
        return 1
    try:
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        k = cupy.ElementwiseKernel("float32 x, float32 y", "float32 z", "z = x * 2.0f + y",
                                   "gpucheck_axpy")
        xh = numpy.arange(1 << 20, dtype=numpy.float32) / 7
        yh = numpy.ones(1 << 20, dtype=numpy.float32)
        got = cupy.asnumpy(k(cupy.asarray(xh), cupy.asarray(yh)))
        ok = numpy.allclose(got, xh * 2 + yh, rtol=1e-6)
        emit("cupy.elementwise", "pass" if ok else "fail", device=name,
             detail=f"z = 2x + y over 1M floats, max abs error "
                    f"{float(numpy.abs(got - (xh * 2 + yh)).max()):.3g}",
             cupy=cupy.__version__, libcuda=libcuda_mapped())
        return 0 if ok else 1
    except Exception as e:  # noqa: BLE001
        emit("cupy.elementwise", "fail", error=exc_text(e), libcuda=libcuda_mapped())
        return 1


def part_bench():
    try:
        import torch
        dev = torch.device("cuda")
        torch.manual_seed(0)
        width, batch = 4096, 2048
        model = torch.nn.Sequential(*[m for _ in range(4) for m in
                                      (torch.nn.Linear(width, width), torch.nn.ReLU())],
                                    torch.nn.Linear(width, 1)).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=1e-4)
        x = torch.randn(batch, width, device=dev)
        y = torch.randn(batch, 1, device=dev)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()

        for _ in range(5):
            step()
        torch.cuda.synchronize()
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            step()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        times.sort()
        med = (times[9] + times[10]) / 2
        print(json.dumps({"name": "bench.torch_train_step_ms", "status": "value",
                          "value": med * 1e3, "unit": "ms", "better": "lower",
                          "detail": f"MLP 4 x {width} + 1, batch {batch}, fp32, SGD; "
                                    f"median of 20 steps after 5 warm-up"}), flush=True)
        return 0
    except Exception as e:  # noqa: BLE001
        emit("bench.torch_train_step_ms", "fail", error=exc_text(e), libcuda=libcuda_mapped())
        return 1


def main():
    parts = {"torch": part_torch, "cupy": part_cupy, "bench": part_bench}
    if len(sys.argv) != 2 or sys.argv[1] not in parts:
        print(f"usage: {sys.argv[0]} torch|cupy|bench", file=sys.stderr)
        return 2
    return parts[sys.argv[1]]()


if __name__ == "__main__":
    sys.exit(main())
