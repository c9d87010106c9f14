"""The training step both tokenizer stages run: batch draw, optional hinge GAN, then the engine's
``TrainLoop``, schedule, export, publish and train record (``harness.runs.training``). Each stage
supplies only its loss function."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import harness.runs.training as training
from alitok.train import tokenizer_common as common
from harness.core.config import to_dict

LossFn = Callable[[torch.Tensor, int], "tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]"]


class TokenizerWithDiscriminator(nn.Module):
    """Checkpoint container when the GAN is on: keys ``tokenizer.*`` and ``discriminator.*``."""

    def __init__(self, tokenizer: nn.Module, discriminator: nn.Module):
        super().__init__()
        self.tokenizer, self.discriminator = tokenizer, discriminator


class TokenizerTraining:
    def __init__(
        self,
        c: Any,
        model: nn.Module,
        params: Iterable[nn.Parameter],
        out_dir: Path,
        device: torch.device,
        stage: str,
        resolved: dict[str, Any],
        publish: bool = False,
        extra_groups: list[tuple[list[nn.Parameter], float]] = (),
    ):
        from alitok.tokenizer import export_metadata
        from harness.nn.layers.vit import init_vit_weights

        training.check_publish(c.export, publish)
        self.parallel = training.init_parallel(device)
        device = self.parallel.device
        self.c, self.model, self.device, self.stage, self.publish = c, model.to(device), device, stage, publish
        self.data = common.train_batches(c.data, model.cfg.image_size, self.parallel, c.seed)
        gan = c.loss.gan
        # the tokenizer's groups (``extra_groups``: (params, lr scale), e.g. a slower codebook), then D's
        groups = [
            {"params": [p for p in ps if p.requires_grad], "lr": c.optim.lr * scale, "lr_scale": scale}
            for ps, scale in [(list(params), 1.0), *extra_groups]
        ]
        self.tok_groups = len(groups)
        self.disc = None
        container: nn.Module = model
        if gan.enabled:
            from alitok.train.tokenizer_gan import PatchDiscriminator

            self.disc = PatchDiscriminator(gan.channels)
            init_vit_weights(self.disc, torch.Generator().manual_seed(c.seed + 1))
            self.disc.to(device)
            container = TokenizerWithDiscriminator(model, self.disc)
            groups.append({"params": list(self.disc.parameters()), "lr": gan.lr})
        self.opt = training.make_optimizer(groups, c.optim)
        self.metadata = {
            **export_metadata(model),
            "seed": c.seed,
            "git_sha": training.git_sha(),
            "trainer": f"alitok-{stage}",
        }
        # where the weights are published does not change training: a finished run can be published later
        run_config = {k: v for k, v in {**to_dict(c), **resolved}.items() if k != "export"}
        self.loop = training.TrainLoop(
            out_dir,
            container,
            self.opt,
            c.steps,
            c.seed,
            run_config,
            ckpt_every=c.ckpt_every,
            log_every=c.log_every,
            metadata=self.metadata,
            parallel=self.parallel,
        )

    def _step(self, loss_fn: LossFn, i: int) -> dict[str, float]:
        c, gan = self.c, self.c.loss.gan
        lr = training.lr_at(i, c.steps, c.optim)
        tok_groups = self.opt.param_groups[: self.tok_groups]
        for g in tok_groups:  # D keeps its constant gan.lr
            g["lr"] = lr * g.get("lr_scale", 1.0)
        tok_params = [p for g in tok_groups for p in g["params"]]
        # this rank's slice of the step's global batch: the order ignores the world size
        x = self.data.batch(i, c.batch_size, self.loop.generator, self.device)
        gan_on = self.disc is not None and i >= gan.start_step
        self.opt.zero_grad(set_to_none=True)
        parts = training.micro_batches(len(x), c.grad_accum)  # grad_accum 1: the whole batch
        total_sum, recons, logs = 0.0, [], {}
        for sl in parts:
            with training.autocast(self.device, c.precision):
                total, recon, micro_logs = loss_fn(x[sl], i)
                if gan_on:
                    from alitok.train.tokenizer_gan import generator_adv_loss

                    g_adv = generator_adv_loss(self.disc(recon))
                    total = total + gan.generator_weight * g_adv
                    micro_logs["g_adv"] = g_adv.detach()
            (total / len(parts)).backward()
            total_sum += float(total.detach()) / len(parts)
            recons.append(recon.detach().float())
            for k, v in micro_logs.items():
                logs[k] = logs.get(k, 0.0) + v.detach().float() / len(parts)
        recon = torch.cat(recons)
        if self.disc is not None:
            for p in self.disc.parameters():
                p.grad = None  # the generator step must not move D
        self.parallel.average_gradients(tok_params)
        if c.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(tok_params, c.optim.grad_clip)
        self.opt.step()
        if gan_on:
            from alitok.train.tokenizer_gan import hinge_d_loss

            self.opt.zero_grad(set_to_none=True)
            with training.autocast(self.device, c.precision):
                d_loss = hinge_d_loss(self.disc(x), self.disc(recon))
            (gan.discriminator_weight * d_loss).backward()
            self.parallel.average_gradients(self.disc.parameters())
            self.opt.step()  # tokenizer grads are None, so only D moves
            logs["d_loss"] = d_loss.detach()
        if self.parallel.world_size > 1 and self.model.cfg.clustering_vq:
            self.parallel.average_state(self.model.quantize)  # each rank's online update used its own slice
        return {"loss": total_sum, "lr": self.opt.param_groups[0]["lr"], **{k: float(v) for k, v in logs.items()}}

    def train(self, loss_fn: LossFn, progress: bool = True) -> dict[str, Any]:
        try:
            logs = self.loop.run(lambda i: self._step(loss_fn, i), progress=progress)
        finally:
            self.data.close()
        if not self.parallel.is_main:
            return {}
        rows = logs or self.loop.logged()
        summary: dict[str, Any] = {
            "stage": self.stage,
            "steps": self.loop.step,
            "checkpoint": str(self.loop.model_path),
        }
        if rows:
            summary.update({k: round(v, 6) for k, v in rows[-1].items() if k not in ("step", "time_s")})
        model = {
            "name": f"alitok-{self.stage}",
            "stage": self.model.stage,
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "config": self.model.cfg.to_dict(),
        }
        return training.finish_run(
            self.loop,
            summary,
            self.model.state_dict(),
            export_to=self.c.export,
            publish=self.publish,
            trainer=f"alitok-{self.stage}",
            model=model,
            metrics={k: v for k, v in summary.items() if isinstance(v, float)},
            device=self.device,
            extra={"data": self.data.describe()},
            notes=["train-set figures (the last logged step); held-out reconstruction quality: the recon verb"],
        )
