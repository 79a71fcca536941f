"""What UNet2DModel and UNet2DConditionModel share: the time embedding (stage 1) and the
skip-connection bookkeeping of stages 2 to 6, forward and backward.

    1. time          t -> sinusoidal features -> time_embedding (+ class_embedding[label]) = emb
    2. pre-process   x -> conv_in
    3. down          down blocks; keep conv_in's output and every layer's output as a skip
    4. mid           mid block
    5. up            up blocks (each resnet concatenates one skip, the latest first)
    6. post-process  conv_norm_out -> SiLU -> conv_out

Every down and up block runs through its run(..., context) / run_backward, which a block without
cross-attention ignores context in (and returns 0.0 for d context); a block with cross-attention
reads context (encoder_hidden_states, (B, M, D)) and the gradients to it are summed. The models
build the modules under diffusers' names; this class only runs them.
"""

import numpy as np

from tinydiff.models.checks import config_bool, config_number, config_optional_int
from tinydiff.nn import Module


def check_common_config(c, owner):
    """Check, in place, the config keys both UNets share: norm_eps, dropout, mid_block_scale_factor,
    freq_shift, flip_sin_to_cos and num_class_embeds."""
    c["norm_eps"] = config_number(c["norm_eps"], "norm_eps", owner, positive=True)
    c["dropout"] = config_number(c["dropout"], "dropout", owner, minimum=0.0, maximum=1.0)
    if c["dropout"] == 1.0:
        raise ValueError(f"{owner}: dropout: expected a probability in [0, 1), got 1.0")
    c["mid_block_scale_factor"] = config_number(c["mid_block_scale_factor"], "mid_block_scale_factor", owner,
                                                positive=True)
    c["freq_shift"] = config_number(c["freq_shift"], "freq_shift", owner)
    c["flip_sin_to_cos"] = config_bool(c["flip_sin_to_cos"], "flip_sin_to_cos", owner)
    c["num_class_embeds"] = config_optional_int(c["num_class_embeds"], "num_class_embeds", owner)


class UNetCore(Module):
    """Base of the UNet models. A subclass builds time_proj, time_embedding, class_embedding
    (an Embedding or None), conv_in, down_blocks, mid_block, up_blocks, conv_norm_out, conv_act
    and conv_out, checks its inputs and calls embed / denoise and their backwards."""

    def embed(self, timestep, class_labels, batch):
        """1. time: timestep (batch,) or scalar, class_labels (batch,) or None -> emb (batch, 4 C_0),
        the sinusoidal features of t through an MLP, plus the label's class row."""
        owner = type(self).__name__
        emb = self.time_embedding(self.time_proj(np.broadcast_to(np.asarray(timestep), (batch,))))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError(f"{owner}: class_labels (B,) are required: the model was built with num_class_embeds")
            emb = emb + self.class_embedding(np.broadcast_to(np.asarray(class_labels), (batch,)))
        elif class_labels is not None:
            raise ValueError(f"{owner}: class_labels given, but the model has no class embedding (num_class_embeds=None)")
        return emb

    def embed_backward(self, demb):
        """1. time, backward: parameters only; d emb / d timestep is not needed."""
        if self.class_embedding is not None:
            self.class_embedding.backward(demb)
        self.time_embedding.backward(demb)
        self.time_proj.saved()  # release its cache all the same

    def denoise(self, sample, emb, context=None):
        """Stages 2 to 6: sample (B, C_in, H, W), emb (B, 4 C_0), context for the cross-attention
        blocks (or None) -> (B, C_out, H, W)."""
        # 2. pre-process
        h = self.conv_in(sample)  # (B, C_in, H, W) -> (B, C_0, H, W)

        # 3. down: keep conv_in's output and every layer's output as skips for the up path;
        #    cross-attention blocks also read context
        skips = [h]
        for block in self.down_blocks:
            h, block_skips = block.run(h, emb, context)
            skips.extend(block_skips)

        # 4. mid
        h = self.mid_block(h, emb, context) if self.mid_block.has_cross_attention else self.mid_block(h, emb)

        # 5. up: each resnet concatenates one skip, taken from the end of the list (the latest first)
        self.save_for_backward([len(block.resnets) for block in self.up_blocks], len(skips))
        for block in self.up_blocks:
            n = len(block.resnets)
            h = block.run(h, skips[-n:], emb, context)
            skips = skips[:-n]

        # 6. post-process: silu(norm(h)), then back to the output channels
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))  # (B, C_0, H, W) -> (B, C_out, H, W)

    def denoise_backward(self, grad_out):
        """Stages 6 to 2: -> (d sample, d emb, d context); d context is 0.0 without cross-attention."""
        uses, n_skips = self.saved()

        # 6. post-process
        g = self.conv_norm_out.backward(self.conv_act.backward(self.conv_out.backward(grad_out)))

        # 5. up, last block first. The up path took sum(uses) skips off the end of the list, so the
        #    last up block took the lowest of them, from index n_skips - sum(uses) (0: all are used).
        dskips = [None] * n_skips
        demb, dcontext, start = 0.0, 0.0, n_skips - sum(uses)
        for block, n in zip(reversed(list(self.up_blocks)), reversed(uses)):
            g, block_dskips, dt, dc = block.run_backward(g)
            dskips[start:start + n] = block_dskips
            start += n
            demb, dcontext = demb + dt, dcontext + dc

        # 4. mid
        if self.mid_block.has_cross_attention:
            g, dt, dc = self.mid_block.backward(g)
            dcontext = dcontext + dc
        else:
            g, dt = self.mid_block.backward(g)
        demb = demb + dt

        # 3. down, last block first: each takes the gradients of the skips its layers produced
        first = n_skips
        for block in reversed(list(self.down_blocks)):
            count = len(list(block.layers()))  # one skip per layer
            first -= count
            g, dt, dc = block.run_backward(g, dskips[first:first + count])
            demb, dcontext = demb + dt, dcontext + dc

        # 2. pre-process: conv_in's output fed the down path and, as skip 0, the up path
        return self.conv_in.backward(g + dskips[0]), demb, dcontext

