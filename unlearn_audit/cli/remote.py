"""``check``'s options for served models (``check http(s)://host:port/v2/models/NAME``; docs/remote.md), and the
one place that turns a model argument into a local path or a connected endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .groups import OptionGroup

if TYPE_CHECKING:
    from ..io.models import AuditableModel


@dataclass(frozen=True)
class RemoteAccess(OptionGroup):
    """How ``check`` queries a model (or reference) given as an Open Inference Protocol URL."""

    max_queries: Annotated[
        int | None,
        typer.Option("--max-queries", help="Most input rows sent to each endpoint (retries and re-checks included)."),
    ] = None
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight per endpoint.")] = 4
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request to an endpoint.")] = 30.0
    remote_batch_size: Annotated[int, typer.Option("--remote-batch-size", help="Input rows per request.")] = 64
    token_env: Annotated[
        str | None,
        typer.Option("--token-env", help="NAME of an environment variable holding the endpoint's bearer token."),
    ] = None
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="CA certificate(s) to trust for https:// endpoints.")
    ] = None
    output_kind: Annotated[
        str, typer.Option("--output-kind", help="What an endpoint returns: auto, logits, probabilities or labels.")
    ] = "auto"
    surrogate: Annotated[
        str | None,
        typer.Option(
            "--surrogate",
            help="Local model that crafts fgsm/pgd as transfer probes (default: the first local reference when a model is served).",
        ),
    ] = None

    def settings(self, seed: int, num_classes: int | None) -> Any:
        from ..io.remote import RemoteSettings

        return RemoteSettings(
            batch_size=self.remote_batch_size,
            concurrency=self.concurrency,
            timeout=self.timeout,
            token_env=self.token_env,
            max_queries=self.max_queries,
            output=self.output_kind,  # type: ignore[arg-type]  # RemoteSettings checks the value
            ca_file=str(self.ca_file) if self.ca_file is not None else None,
            num_classes=num_classes,
            seed=seed,
        )


class ModelSources:
    """Model arguments as the audit takes them: local paths stay paths, ``http(s)://`` URLs become connected
    served models (each with its own answer cache under ``WORK_DIR/answers/ROLE``). Close it after the audit."""

    def __init__(self, access: RemoteAccess, *, seed: int, num_classes: int | None, work_dir: Path | None) -> None:
        self.access, self.seed, self.num_classes, self.work_dir = access, seed, num_classes, work_dir
        self.opened: list[Any] = []

    def __enter__(self) -> ModelSources:
        return self

    def __exit__(self, *exc: object) -> None:
        for remote in self.opened:
            remote.close()

    def resolve(self, text: str, role: str) -> Path | AuditableModel:
        from ..io.remote import RemoteModel, is_endpoint
        from ..io.remote.subject import remote_auditable

        if not is_endpoint(text):
            return Path(text)
        cache = self.work_dir / "answers" / role if self.work_dir is not None else None
        settings = self.access.settings(self.seed, self.num_classes)
        remote = RemoteModel(text, settings, work_dir=cache, connect=False)
        self.opened.append(remote)
        remote.connect()
        return remote_auditable(remote)
