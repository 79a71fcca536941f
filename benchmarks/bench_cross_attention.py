"""Benchmark cross-attention (Rombach et al. 2022, sec. 3.3: pixels' queries, text tokens' keys
and values): tinydiff's NumPy reference and Numba kernel against PyTorch's
F.scaled_dot_product_attention (when installed), forward and forward+backward, float32.

Two tables' worth of rows, printed as one (bench_kernels.py's layout and timing method):
- "xattn": the attention kernel alone, q (B, h, N, d) against k, v (B, h, M, d), N pixels and
  M text tokens;
- "layer": the whole MultiHeadAttention(dim, heads, context_dim, bias=False) as
  BasicTransformerBlock.attn2 uses it (to_q, to_k, to_v, attention, to_out.0) against the same
  four torch Linear layers around SDPA, with autograd.

FLOPs (multiply-add = 2): attention 4*B*h*N*M*d forward and 3x that forward+backward; the
layer adds its projections, 2*B*(2*N*D^2 + 2*M*D_ctx*D) forward and 3x forward+backward.

    python benchmarks/bench_cross_attention.py [--quick]
"""

import argparse

try:  # torch before any Numba kernel runs (DESIGN.md, "Benchmarks are side by side and honest")
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

import numpy as np
from bench_kernels import attention_case, print_table, run_case, start_run

from tinydiff import kernels as K
from tinydiff.nn import MultiHeadAttention

# (batch, heads, N pixel tokens, M text tokens, head width): tinydiff's text-to-image UNet at an
# 8x8 and a 16x16 latent level with 16-token captions, and one Stable Diffusion 1.x level
# (64x64 latent / 2 = 32x32 pixels, 77 CLIP tokens, 8 heads of 40) at batch 2
SHAPES = [(32, 4, 64, 16, 16), (32, 4, 256, 16, 16), (2, 8, 1024, 77, 40)]
CONTEXT_DIM = {16: 32, 40: 768}  # text width by head width: tinydiff's CLIP, SD's CLIP


def kernel_case(batch, heads, n, m, d, rng):
    return attention_case(heads, n, d, rng, kv_tokens=m, batch=batch)


def layer_case(batch, heads, n, m, d, rng):
    dim, ctx = heads * d, CONTEXT_DIM[d]
    layer = MultiHeadAttention(dim, heads, context_dim=ctx, bias=False, rng=rng)
    x, dout = (rng.standard_normal((batch, n, dim), dtype=np.float32) for _ in range(2))
    context = rng.standard_normal((batch, m, ctx), dtype=np.float32)

    def ours(backend):
        def fwd():
            with K.use(backend):
                return layer(x, context)

        def fwd_bwd():
            with K.use(backend):
                layer(x, context)
                layer.backward(dout)
        return fwd, fwd_bwd

    impls = {"reference": ours("reference"), "numba": ours("fast")}
    if torch is not None:
        weights = {name: torch.from_numpy(p.data.copy()).requires_grad_() for name, p in layer.named_parameters()}
        tx, tc, tdout = torch.from_numpy(x).requires_grad_(), torch.from_numpy(context).requires_grad_(), \
            torch.from_numpy(dout)

        def t_layer():
            def heads_first(t):  # (B, L, dim) -> (B, heads, L, d)
                return t.view(batch, -1, heads, d).transpose(1, 2)
            q = heads_first(F.linear(tx, weights["to_q.weight"]))
            k = heads_first(F.linear(tc, weights["to_k.weight"]))
            v = heads_first(F.linear(tc, weights["to_v.weight"]))
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, n, dim)
            return F.linear(out, weights["to_out.0.weight"], weights["to_out.0.bias"])

        def t_fwd():
            with torch.no_grad():
                return t_layer()

        def t_fwd_bwd():
            for t in (tx, tc, *weights.values()):
                t.grad = None
            t_layer().backward(tdout)
        impls["torch"] = (t_fwd, t_fwd_bwd)
    flops = 4 * batch * heads * n * m * d + 2 * batch * (2 * n * dim * dim + 2 * m * ctx * dim)
    return impls, flops, 3 * flops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats; the reference only at the smallest shape")
    args = parser.parse_args(argv)
    repeats, ref_repeats = (3, 1) if args.quick else (9, 2)
    _, sgemm = start_run(repeats)
    rng = np.random.default_rng(0)
    rows = []
    for i, (batch, heads, n, m, d) in enumerate(SHAPES):
        skip = args.quick and i > 0
        for kind, case in (("xattn", kernel_case), ("layer", layer_case)):
            impls, f1, f2 = case(batch, heads, n, m, d, rng)
            name = f"{kind} B{batch} h{heads} N{n} M{m} d{d}"
            rows += run_case(name, impls, f1, f2, repeats, ref_repeats, skip_reference=skip)
    print_table(rows, sgemm)
    print("(numba column: kernels/attention.py's Numba kernel, np.dot on blocks of query rows; the layer's "
          "projections are NumPy products on both tinydiff columns)")


if __name__ == "__main__":
    main()
