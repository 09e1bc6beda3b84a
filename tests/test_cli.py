"""The rws-ref command line: --help, --version, and one-line errors with exit status 2."""
import subprocess
import sys

import pytest

import rws_ref
from rws_ref.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"rws-ref {rws_ref.__version__}"
    assert main([]) == 0
    assert "Reweighted Wake-Sleep" in capsys.readouterr().out


def test_bad_argument_is_one_line_on_stderr_with_exit_2():
    result = subprocess.run([sys.executable, "-m", "rws_ref.cli", "--no-such-option"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unrecognized arguments: --no-such-option" in lines[0]
    assert "Traceback" not in result.stderr
