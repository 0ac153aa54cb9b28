"""Failure alerts: structured, delivered to Slack or SMTP when configured, else to a file."""

from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)
DEFAULT_ALERTS_FILE = Path(__file__).resolve().parents[3] / "data" / "alerts" / "alerts.jsonl"


def build_alert(context: dict[str, Any], kind: str = "task_failed") -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    exc = context.get("exception")
    text = str(exc) if exc is not None else ""
    return {
        "kind": kind,
        "at": datetime.now(UTC).isoformat(),
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None),
        "logical_date": str(context.get("logical_date")),
        "data_interval": [
            str(context.get("data_interval_start")),
            str(context.get("data_interval_end")),
        ],
        "try_number": getattr(ti, "try_number", None),
        "error_tail": text.splitlines()[-25:],
        "log_url": getattr(ti, "log_url", None),
        "executor_health": context.get("executor_health"),
        "trouble": context.get("trouble"),
    }


class MusicrecAlertNotifier(BaseNotifier):
    """Slack webhook (``MUSICREC_SLACK_WEBHOOK``), else SMTP (``MUSICREC_ALERT_EMAIL`` with
    ``MUSICREC_SMTP_HOST``), else a JSON line in ``MUSICREC_ALERTS_FILE``. Always logged."""

    template_fields = ("kind",)

    def __init__(self, kind: str = "task_failed") -> None:
        super().__init__()
        self.kind = kind

    def notify(self, context: dict[str, Any]) -> None:
        alert = build_alert(context, self.kind)
        log.error("ALERT %s", json.dumps(alert, default=str))
        webhook = os.environ.get("MUSICREC_SLACK_WEBHOOK")
        email = os.environ.get("MUSICREC_ALERT_EMAIL")
        if webhook:
            body = json.dumps({"text": _summary(alert)}).encode()
            request = urllib.request.Request(webhook, body, {"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=10).close()  # a configured URL
        elif email and os.environ.get("MUSICREC_SMTP_HOST"):
            msg = EmailMessage()
            msg["Subject"] = f"[musicrec] {alert['dag_id']}.{alert['task_id']} {self.kind}"
            msg["From"], msg["To"] = email, email
            msg.set_content(json.dumps(alert, indent=2, default=str))
            with smtplib.SMTP(os.environ["MUSICREC_SMTP_HOST"], timeout=10) as smtp:
                smtp.send_message(msg)
        else:
            path = Path(os.environ.get("MUSICREC_ALERTS_FILE", DEFAULT_ALERTS_FILE))
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write(json.dumps(alert, default=str) + "\n")


def _summary(alert: dict[str, Any]) -> str:
    tail = "\n".join(alert["error_tail"][-8:])
    return (
        f"{alert['kind']}: {alert['dag_id']}.{alert['task_id']} {alert['logical_date']} "
        f"try {alert['try_number']}\n{tail}\n{alert['log_url']}"
    )
