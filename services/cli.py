"""``llmops``: assembles the platform's commands and each service's; nothing else."""

from __future__ import annotations

import logging

import click

from services import dev, host
from services.embedding.commands import commands as embedding_commands
from services.evaluation.commands import commands as evaluation_commands
from services.feedback.commands import commands as feedback_commands
from services.inference.commands import commands as inference_commands
from services.ingestion.commands import commands as ingestion_commands
from services.monitoring.commands import commands as monitoring_commands
from shared.cli import platform
from shared.logs import hold_back_repeats, quiet_libraries
from shared.settings import PlatformSettings

GROUPS = (
    platform,
    ingestion_commands,
    embedding_commands,
    inference_commands,
    feedback_commands,
    evaluation_commands,
    monitoring_commands,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """LLMOps platform: ingest documents over Kafka, index them, answer questions.

    Settings come from the environment (see the README's settings table); with
    KAFKA_BOOTSTRAP_SERVERS unset a local broker is started under LLMOPS_DATA_DIR.
    """
    level = "debug" if verbose else PlatformSettings().log_level
    logging.basicConfig(
        level=logging.getLevelName(level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_libraries(level)
    hold_back_repeats()


def _assemble() -> None:
    for command in (host.run_command, dev.dev_command):
        main.add_command(command)
    for group in GROUPS:
        for name, command in group.commands.items():
            if name in main.commands:
                raise RuntimeError(f"two commands named {name!r}")
            main.add_command(command, name)


_assemble()

if __name__ == "__main__":
    main()
