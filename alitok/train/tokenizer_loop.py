"""The training step both tokenizer stages run: batch draw, LR schedule, optional hinge GAN,
resumable ``TrainLoop``, inference export. Each stage supplies only its loss function."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from alitok.train import tokenizer_common as common
from harness.config import to_dict
from harness.nn.checkpoint import save_safetensors
from harness.nn.training import TrainLoop

LossFn = Callable[[torch.Tensor, int], "tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]"]


class TokenizerWithDiscriminator(nn.Module):
    """Checkpoint container when the GAN is on: keys ``tokenizer.*`` and ``discriminator.*``."""

    def __init__(self, tokenizer: nn.Module, discriminator: nn.Module):
        super().__init__()
        self.tokenizer, self.discriminator = tokenizer, discriminator


class TokenizerTraining:
    def __init__(self, c: Any, model: nn.Module, params: Iterable[nn.Parameter], out_dir: Path,
                 device: torch.device, stage: str, resolved: dict[str, Any]):
        from alitok.tokenizer import export_metadata
        from harness.nn.vit import init_vit_weights

        self.c, self.model, self.device, self.stage = c, model, device, stage
        self.images = common.load_train_images(c.data, model.cfg.image_size)
        gan = c.loss.gan
        groups = [{"params": [p for p in params if p.requires_grad], "lr": c.optim.lr, "base_lr": c.optim.lr}]
        self.disc = None
        container: nn.Module = model
        if gan.enabled:
            from alitok.train.tokenizer_gan import PatchDiscriminator

            self.disc = PatchDiscriminator(gan.channels)
            init_vit_weights(self.disc, torch.Generator().manual_seed(c.seed + 1))
            self.disc.to(device)
            container = TokenizerWithDiscriminator(model, self.disc)
            groups.append({"params": list(self.disc.parameters()), "lr": gan.lr, "base_lr": gan.lr})
        self.opt = torch.optim.AdamW(groups, lr=c.optim.lr, betas=c.optim.betas, weight_decay=c.optim.weight_decay)
        self.metadata = {**export_metadata(model), "seed": c.seed, "git_sha": common.git_sha(),
                         "trainer": f"alitok-{stage}"}
        self.loop = TrainLoop(out_dir, container, self.opt, c.steps, c.seed, {**to_dict(c), **resolved},
                              ckpt_every=c.ckpt_every, log_every=c.log_every, metadata=self.metadata)

    def _step(self, loss_fn: LossFn, i: int) -> dict[str, float]:
        c, gan = self.c, self.c.loss.gan
        factor = common.lr_factor(i, c.optim, c.steps)
        self.opt.param_groups[0]["lr"] = self.opt.param_groups[0]["base_lr"] * factor
        x = common.draw_batch(self.images, c.batch_size, self.loop.generator, c.data.hflip, self.device)
        total, recon, logs = loss_fn(x, i)
        gan_on = self.disc is not None and i >= gan.start_step
        if gan_on:
            from alitok.train.tokenizer_gan import generator_adv_loss

            g_adv = generator_adv_loss(self.disc(recon))
            total = total + gan.generator_weight * g_adv
            logs["g_adv"] = g_adv.detach()
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if self.disc is not None:
            for p in self.disc.parameters():
                p.grad = None  # the generator step must not move D
        if c.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], c.optim.grad_clip)
        self.opt.step()
        if gan_on:
            from alitok.train.tokenizer_gan import hinge_d_loss

            self.opt.zero_grad(set_to_none=True)
            d_loss = hinge_d_loss(self.disc(x), self.disc(recon.detach()))
            (gan.discriminator_weight * d_loss).backward()
            self.opt.step()  # tokenizer grads are None, so only D moves
            logs["d_loss"] = d_loss.detach()
        return {"loss": float(total.detach()), "lr": self.opt.param_groups[0]["lr"],
                **{k: float(v) for k, v in logs.items()}}

    def train(self, loss_fn: LossFn, progress: bool = True) -> dict[str, Any]:
        start, t0 = self.loop.step, time.perf_counter()
        logs = self.loop.run(lambda i: self._step(loss_fn, i), progress=progress)
        elapsed = time.perf_counter() - t0
        summary: dict[str, Any] = {"stage": self.stage, "steps": self.loop.step, "checkpoint": str(self.loop.model_path)}
        if self.loop.step > start:
            summary["steps_per_s"] = round((self.loop.step - start) / elapsed, 3)
        if logs:
            summary.update({k: round(v, 6) for k, v in logs[-1].items() if k not in ("step", "time_s")})
        # A finished run restarted trains nothing; it must not overwrite an export written since
        # (the tiny stage-1 and stage-2 configs share one export path, stage 2 writing last).
        if self.c.export and (self.loop.step > start or not Path(self.c.export).exists()):
            path = save_safetensors(self.c.export, self.model.state_dict(), {**self.metadata, "step": self.loop.step})
            summary["export"] = str(path)
        return summary
