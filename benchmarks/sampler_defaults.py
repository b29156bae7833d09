"""The measurements behind the fixed-budget default (docs/fast_samplers.md): relative RMS
error of candidate solvers at 4, 5, 10 and 20 NFE on the 4-D correlated Gaussian (VP, sub-VP,
VE; against the exact flow and the same final step) and the ring (against a tight RK45
solution of the same x_T), and, given a run directory, a trained network (against its own
200-NFE UniPC-3 solution).

    python benchmarks/sampler_defaults.py [WORKDIR]
"""
import sys

import torch

from scoresde import VESDE, VPSDE, SubVPSDE, toy
from scoresde.sampling import (
    deis_sampler,
    denoise_step,
    dpm_solver_pp_sampler,
    ipndm_sampler,
    rk45_sampler,
    unipc_sampler,
)

F64 = torch.float64
C = {
 "ipndm3 vpq": (ipndm_sampler, dict(order=3, skip_type="vp_quadratic")),
 "ipndm4 vpq": (ipndm_sampler, dict(order=4, skip_type="vp_quadratic")),
 "ipndm2 vpq": (ipndm_sampler, dict(order=2, skip_type="vp_quadratic")),
 "unipc3 n bh2 vpq": (unipc_sampler, dict(prediction="noise", variant="bh2", skip_type="vp_quadratic")),
 "unipc3 n bh2 vpq lof0": (unipc_sampler, dict(prediction="noise", variant="bh2", skip_type="vp_quadratic",
                                                lower_order_final=False)),
 "unipc2 n bh2 vpq": (unipc_sampler, dict(order=2, prediction="noise", variant="bh2", skip_type="vp_quadratic")),
 "unipc3 d bh2 vpq lof0": (unipc_sampler, dict(prediction="data", variant="bh2", skip_type="vp_quadratic",
                                                lower_order_final=False)),
 "dpm++2M vpq lof0": (dpm_solver_pp_sampler, dict(order=2, skip_type="vp_quadratic", lower_order_final=False)),
 "deis3 vpq": (deis_sampler, dict(order=3, skip_type="vp_quadratic")),
}
STEPS = [3, 4, 9, 19]
def problems():
    for sde in (VPSDE(), SubVPSDE(), VESDE()):
        data = toy.correlated_gaussian(dim=4)
        z = sde.prior_sampling((64, 4), generator=torch.Generator().manual_seed(4), dtype=F64)
        exact = data.flow(z, sde, torch.ones(64, dtype=F64), torch.full((64,), 1e-3, dtype=F64))
        ref = denoise_step(data.score_fn(sde), sde, exact, 1e-3)
        yield f"gauss4 {type(sde).__name__}", data.score_fn(sde), sde, z, ref, data.mean
    sde, data = VPSDE(), toy.ring()
    z = sde.prior_sampling((500, 2), generator=torch.Generator().manual_seed(4), dtype=F64)
    ref, _ = rk45_sampler(data.score_fn(sde), sde, z.shape, x_T=z, rtol=1e-8, atol=1e-8)
    yield "ring VP", data.score_fn(sde), sde, z, ref, 0.0
    if len(sys.argv) > 1:
        from scoresde.models import get_score_fn
        from scoresde.train import data_shape, load_run
        config, model, sde, step = load_run(sys.argv[1], device="cpu")
        f = get_score_fn(model, sde)
        shape = (32,) + data_shape(config)
        z = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref, _ = unipc_sampler(f, sde, shape, steps=199, x_T=z)
        yield f"digits(step {step})", f, sde, z, ref, 0.0
for pname, f, sde, z, ref, m in problems():
    print("##", pname, "NFE", [n + 1 for n in STEPS], flush=True)
    for name, (fn, kw) in C.items():
        row = []
        for n in STEPS:
            with torch.no_grad():
                x, nfe = fn(f, sde, z.shape, steps=n, x_T=z, **kw)
            row.append("%.4f" % ((x - ref).pow(2).mean().sqrt() / (ref - m).pow(2).mean().sqrt()).item())
        print(f"{name:24s}", row, flush=True)
