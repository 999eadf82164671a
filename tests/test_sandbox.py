"""sandbox.py and rule_checks.py: hostile check functions from a data file each score as a failed check with a reason
while the caller goes on; without the flag nothing runs; `python run.py verify` scores VerInstruct data."""

import json
import subprocess

import pytest

from minirlvr.reward import rule_checks

from minirlvr.commands import verify as verify_cli
from minirlvr.reward.sandbox import Check, SandboxError, run_checks

HEAD = "def check_following(instruction, response):\n"
GOOD = HEAD + "    return 'tea' in response\n"


def hostile(tmp_path):
    """name -> (check body, what its reason must contain). Each is followed by GOOD in the run."""
    marker = tmp_path / "marker"
    return marker, {
        "infinite loop": (HEAD + "    while True:\n        pass\n", "timeout"),
        "4 GB allocation": (HEAD + "    x = bytearray(4 * 1024 ** 3)\n    return True\n", "MemoryError"),
        "os.system": (HEAD + f"    import os\n    os.system('touch {marker}')\n    return True\n", "refused: os.system"),
        "os.system, error swallowed": (HEAD + f"    import os\n    try:\n        os.system('touch {marker}')\n"
                                       "    except BaseException:\n        pass\n    return True\n", "refused: os.system"),
        "write outside": (HEAD + f"    open({str(marker)!r}, 'w').write('x')\n    return True\n", "refused: open"),
        "socket": (HEAD + "    import socket\n    socket.socket().connect(('127.0.0.1', 9))\n    return True\n",
                   "refused: socket"),
        "subprocess": (HEAD + "    import subprocess\n    subprocess.run(['true'])\n    return True\n", "refused"),
        "sys.exit": (HEAD + "    import sys\n    sys.exit(3)\n", "SystemExit: 3"),
        "raise": (HEAD + "    raise ValueError('bad input')\n", "ValueError: bad input"),
        "non-boolean": (HEAD + "    return 'yes'\n", "returned str, not a bool"),
        "os._exit": (HEAD + "    import os\n    os._exit(7)\n", "crashed: the worker exited with code 7"),
        "no check_following": ("x = 1\n", "defines no check_following"),
        "syntax error": ("def check_following(:\n", "SyntaxError"),
    }


def test_hostile_checks_fail_with_their_reason_and_the_caller_goes_on(tmp_path):
    marker, cases = hostile(tmp_path)
    checks = []
    for code, _ in cases.values():
        checks += [Check(code, "say tea", "tea time"), Check(GOOD, "say tea", "tea time")]
    verdicts = run_checks(checks, allow=True, timeout_s=1.0)
    assert len(verdicts) == len(checks)
    for k, (name, (_, reason)) in enumerate(cases.items()):
        bad, after = verdicts[2 * k], verdicts[2 * k + 1]
        assert bad.ok is False and reason in bad.reason, (name, bad)
        assert after.ok is True and after.reason is None, (name, after)  # the next check still runs
    assert not marker.exists()


def test_writing_inside_the_sandbox_folder_is_allowed_and_answers_are_in_order():
    scratch = HEAD + "    open('scratch.txt', 'w').write(response)\n    return open('scratch.txt').read() == response\n"
    checks = [Check(scratch, "i", "a"), Check(GOOD, "i", "no"), Check(GOOD, "i", "tea"), Check(scratch, "i", "b")]
    for batch in (1, 3):
        assert [v.ok for v in run_checks(checks, allow=True, batch=batch)] == [True, False, True, True]


def test_without_the_flag_no_dataset_code_runs(monkeypatch):
    def no_process(*a, **k):
        raise AssertionError("a subprocess was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    with pytest.raises(SandboxError, match="--run-dataset-code"):
        run_checks([Check(GOOD, "i", "tea")])
    rec = {"prompt": "say tea", "rule_checks": [{"name": "tea", "code": GOOD}]}
    with pytest.raises(SandboxError, match="--run-dataset-code"):
        rule_checks.make_reward(allow=False)([rec], ["tea"])


def test_rule_reward_mixes_hard_ids_and_rule_checks():
    logged = []
    rec = {"key": 1, "prompt": "say tea", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}],
           "rule_checks": [{"name": "tea", "code": GOOD}, {"name": "crash", "code": HEAD + "    raise KeyError('k')\n"}]}
    plain = {"key": 2, "prompt": "x", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    fn = rule_checks.make_reward(allow=True, log=logged.append)
    rewards, parts = fn([rec, rec, plain], ["tea, please", "tea please", "a, b"])
    assert rewards == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert parts["rule:tea"][:2] == [1.0, 1.0] and parts["hard:punctuation:no_comma"] == [0.0, 1.0, 0.0]
    assert fn.last_metrics == {"rule_check_errors": 2}
    assert len(logged) == 2 and "'crash'" in logged[0] and "KeyError" in logged[0]


def test_verify_scores_verinstruct_data_through_the_sandbox(tmp_path, capsys):
    data = tmp_path / "v.jsonl"
    rows = [{"id": 1, "prompt": "Say tea.", "checkers": ["[rule] Has_Tea", "[llm] Tone"],
             "functions": [GOOD, 'def check_following(instruction, response):\n    return llm_score("Be warm.")\n']},
            {"id": 2, "prompt": "Say tea twice.", "checkers": ["[rule] Has_Tea", "[rule] Loops"],
             "functions": [GOOD, HEAD + "    while True:\n        pass\n"]}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"prompt": "Say tea.", "response": "tea"}) + "\n"
                         + json.dumps({"prompt": "Say tea twice.", "response": "tea tea"}) + "\n")
    with pytest.raises(SystemExit) as e:
        verify_cli.main(["--data", str(data), "--responses", str(responses)])
    assert "--run-dataset-code" in str(e.value)
    out = tmp_path / "report.json"
    report = verify_cli.main(["--data", str(data), "--responses", str(responses), "--out", str(out),
                              "--run-dataset-code"])
    assert report["metrics"] == {"prompt_level": 0.5, "check_level": 2 / 3, "rule_check_level": 2 / 3}
    assert report["per_checker"]["Has_Tea"] == {"n": 2, "pass": 1.0} and report["soft_not_scored"] == 1
    assert report["check_failures"] == [{"key": 2, "check": "Loops", "reason": "timeout: no answer within 2 s"}]
    assert json.loads(out.read_text())["metrics"] == report["metrics"]
    assert "rule checker" in capsys.readouterr().out
