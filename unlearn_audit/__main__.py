"""``python -m unlearn_audit`` (also the torchrun target)."""

from .cli import run

if __name__ == "__main__":
    run()
