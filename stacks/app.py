"""Build the cdktf app: one stack per configured account."""

from __future__ import annotations

from stacks.bindings import App
from stacks.config import DetectorConfig
from stacks.detector_stack import DetectorStack
from stacks.providers import ProviderOptions


def build_app(
    config: DetectorConfig,
    options: ProviderOptions | None = None,
    outdir: str | None = None,
    only: str | None = None,
) -> App:
    """The app with a :class:`DetectorStack` per account (or just ``only``), not yet synthesized."""
    app = App(outdir=outdir) if outdir else App()
    for account in config.accounts:
        if only is None or account.name == only:
            DetectorStack(app, account, options, state=config.state)
    return app
