"""Learning check of the training code: does Stage 1 teach a tiny model a toy IQA task?

Score = brightness level of synthetic textured images. A tiny random
Qwen2.5-VL gets a format warm-up (SFT in which every image is answered with
each score 1-5, so the answers carry no label), then Stage 1 rank-GRPO with
the short ``score_only`` prompt. Prints the held-out SRCC and the mean
ranking reward before and after, and their ratios/differences. CPU only,
about 3-5 CPU minutes with the defaults.

    python benchmarks/learn_toy.py [--rl-steps 200] [--lr 5e-4] [--prompt score_only|probe] [--work DIR]

One torch thread by default: on a shared machine extra threads spin and burn
CPU time without speeding a 2-layer model up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="Working folder (default: a temporary one).")
    ap.add_argument("--train-images", type=int, default=48)
    ap.add_argument("--test-images", type=int, default=48)
    ap.add_argument("--warmup-steps", type=int, default=150)
    ap.add_argument("--rl-steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of the GRPO rollouts")
    ap.add_argument("--eval-temperature", type=float, default=0.7, help="sampling temperature of the evaluation")
    ap.add_argument("--num-generations", type=int, default=8, help="samples per image in GRPO")
    ap.add_argument("--images-per-group", type=int, default=4, help="images compared by the ranking reward")
    ap.add_argument("--beta", type=float, default=0.0, help="KL coefficient of Stage 1")
    ap.add_argument("--scale-rewards", choices=("group", "batch", "none"), default="none",
                    help="advantage scaling of Stage 1")
    ap.add_argument("--prompt", choices=("score_only", "probe"), default="score_only", help="Stage-1 prompt kind")
    ap.add_argument("--image-size", type=int, default=112, help="long side of the toy images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from qprobe.train.toy import learn_toy

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        r = learn_toy(work, train_images=args.train_images, test_images=args.test_images,
                      warmup_steps=args.warmup_steps, rl_steps=args.rl_steps, learning_rate=args.lr,
                      temperature=args.temperature, eval_temperature=args.eval_temperature,
                      num_generations=args.num_generations,
                      images_per_group=args.images_per_group, scale_rewards=args.scale_rewards,
                      beta=args.beta, prompt=args.prompt,
                      image_size=args.image_size, seed=args.seed)
    print(f"held-out SRCC      before {r.before['srcc']:+.3f}  after {r.after['srcc']:+.3f}  "
          f"delta {r.after['srcc'] - r.before['srcc']:+.3f}")
    print(f"parse rate         before {r.before['parse_rate']:.3f}  after {r.after['parse_rate']:.3f}")
    ratio = r.reward_last / r.reward_first if r.reward_first else float("nan")
    print(f"mean rank reward   first {r.reward_first:.3f}  last {r.reward_last:.3f}  ratio {ratio:.3f}  "
          f"(mean of the first / last 25 of {r.steps} GRPO steps)")
    print("wall seconds       " + json.dumps(r.seconds))
    print("CPU seconds        " + json.dumps(r.cpu_seconds) + f"  total {sum(r.cpu_seconds.values()) / 60:.1f} CPU min")


if __name__ == "__main__":
    main()
