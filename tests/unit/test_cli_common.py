"""What every `callfleet` command shares: a known error is one red line and an exit
status, anything else keeps its traceback."""

from __future__ import annotations

import argparse

import pytest

from cluster.cli.common import EXIT_UNAVAILABLE, CliError, reports_errors

pytestmark = pytest.mark.unit


class CampaignGone(LookupError):
    pass


def _command(exc: Exception):
    @reports_errors(lambda: (CampaignGone,))
    def cmd(args: argparse.Namespace) -> int:
        raise exc

    return cmd


@pytest.mark.parametrize(("exc", "status"), [
    (CliError("--skill 'x=high': the level must be a whole number"), 2),
    (CliError("cannot reach the cluster's Redis at 127.0.0.1:1", exit_code=EXIT_UNAVAILABLE), 1),
    (CampaignGone("no campaign 'ghost' [spring]"), 2),
    (FileNotFoundError(2, "No such file or directory", "leads.csv"), 1),
])
def test_known_errors_are_one_line_and_a_status(exc: Exception, status: int, capsys) -> None:
    assert _command(exc)(argparse.Namespace()) == status
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(exc) in err  # brackets are text, not markup


def test_other_errors_keep_their_traceback() -> None:
    with pytest.raises(KeyError):
        _command(KeyError("bug"))(argparse.Namespace())
