"""Command line: ``python -m ml generate`` and ``python -m ml train`` (``--help`` on each)."""

from __future__ import annotations

import json
import logging
import sys
import warnings

from pydantic import ValidationError
from pydantic_settings import BaseSettings, CliApp, CliSubCommand, SettingsConfigDict

from ml.errors import TrainingError
from ml.settings import GenerateSettings, TrainSettings

log = logging.getLogger("ml")


class Generate(GenerateSettings):
    def cli_cmd(self) -> None:
        from ml.synthetic import SyntheticSpec, generate_transactions, write_csv

        spec = SyntheticSpec(rows=self.rows, customers=self.customers, seed=self.seed)
        transactions = generate_transactions(spec)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        write_csv(transactions, str(self.out))
        log.info(
            "wrote %d transactions of %d customers to %s",
            len(transactions),
            transactions["CustomerId"].nunique(),
            self.out,
        )


class Train(TrainSettings):
    def cli_cmd(self) -> None:
        from ml.job import run

        summary = run(TrainSettings(**self.model_dump()))
        print(json.dumps(summary), flush=True)
        log.info("model card: %s", summary["report"])
        log.info("serve it: python -m serving --model-uri %s --http-port 8080", summary["onnx_path"])
        log.info(
            "or from the registry: MLFLOW_TRACKING_URI=%s python -m serving --model-uri models:/%s@%s",
            summary["tracking_uri"], summary["registered_model"], self.alias,
        )  # fmt: skip


class Main(BaseSettings):
    """Bati Bank credit-risk training: synthetic data, training, ONNX export and MLflow registration."""

    model_config = SettingsConfigDict(
        cli_prog_name="python -m ml", cli_kebab_case=True, cli_hide_none_type=True, cli_enforce_required=True
    )
    generate: CliSubCommand[Generate]
    train: CliSubCommand[Train]

    def cli_cmd(self) -> None:
        CliApp.run_subcommand(self)


def _quiet_libraries() -> None:
    for name in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*Hint: Inferred schema.*")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    _quiet_libraries()
    try:
        CliApp.run(Main, cli_args=sys.argv[1:] if argv is None else argv)
    except ValidationError as exc:
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            fields = [str(p) for p in error["loc"][1:] if not isinstance(p, int)]
            where = f"--{'.'.join(fields).replace('_', '-')}: " if fields else ""
            print(f"error: {where}{message}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
