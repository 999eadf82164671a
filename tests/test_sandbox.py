"""sandbox.py and rule_checks.py: check functions from a data file run confined by the kernel. Hostile checks of
every kind (acting after switching Python-level guards off, dir-fd writes, reads outside, forging other verdicts,
killing or stopping the caller, closing the channel and sleeping, malformed results, filling the disk, daemons)
each sit between benign checks whose verdicts must stay right, and the run finishes; without the flag nothing
runs; `python run.py verify` scores VerInstruct data and resumes a killed run."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from minirlvr.reward import rule_checks

from minirlvr.reward import sandbox

from minirlvr.commands import verify as verify_cli
from minirlvr.evaluation.verify import run_rules
from minirlvr.reward.sandbox import WORKER, Check, SandboxError, Verdict, parse_result, run_checks

HEAD = "def check_following(instruction, response):\n"
GOOD = HEAD + "    return 'tea' in response\n"
YES, NO = Check(GOOD, "say tea", "tea time"), Check(GOOD, "say tea", "coffee time")  # True, False


def body(code):
    """A check whose body is `code` (dedented), inside check_following."""
    return HEAD + textwrap.indent(textwrap.dedent(code), "    ")


def sandwich(hostile_codes, **kw):
    """Run each hostile code as [YES, NO, hostile, NO, YES] in one batch; assert the neighbours' verdicts and
    return the hostile checks' verdicts."""
    checks = []
    for code in hostile_codes:
        checks += [YES, NO, Check(code, "say tea", "tea time"), NO, YES]
    verdicts = run_checks(checks, allow=True, batch=len(checks), **kw)
    assert len(verdicts) == len(checks)
    for k in range(len(hostile_codes)):
        around = [verdicts[5 * k + j] for j in (0, 1, 3, 4)]
        assert [v.ok for v in around] == [True, False, False, True], (hostile_codes[k], around)
        assert all(v.reason is None for v in around), around
    return verdicts[2::5]


@pytest.fixture
def open_dir():
    """A folder anyone may write (so that only the sandbox, not file modes, keeps a check out), with a victim file
    and a secret file in it."""
    d = tempfile.mkdtemp(prefix="minirlvr-sandbox-test-")
    os.chmod(d, 0o777)
    for name, text in (("victim", "intact"), ("secret", "LEAK-file-7f3a")):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(d, name), 0o666)
    yield d
    subprocess.run(["rm", "-rf", d])


def worker_processes(patience_s=10.0):
    """pids of live processes running this checkout's sandbox worker (there should be none after a run). A killed
    worker's processes may take a moment to go: they get up to patience_s (not a timing assertion)."""
    deadline = time.monotonic() + patience_s
    while True:
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if WORKER.encode() in f.read():
                        pids.append(int(pid))
            except OSError:
                pass
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


def test_ordinary_failures_are_failed_checks_with_their_reason():
    cases = {
        body("while True:\n    pass"): "timeout",
        body("x = bytearray(4 * 1024 ** 3)\nreturn True"): "MemoryError",
        body("import sys\nsys.exit(3)"): "SystemExit: 3",
        body("raise ValueError('bad input')"): "ValueError: bad input",
        body("return 'yes'"): "returned str, not a bool",
        body("import os\nos._exit(7)"): "crashed: the check exited with code 7",
        body("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"): "crashed: killed by SIGSEGV",
        body("import os, signal\nos.kill(os.getpid(), signal.SIGRTMIN + 3)"): "crashed: killed by signal",
        "x = 1\n": "defines no check_following",
        "def check_following(:\n": "SyntaxError",
    }
    for (code, reason), v in zip(cases.items(), sandwich(list(cases), timeout_s=1.0)):
        assert v.ok is False and reason in v.reason, (code, v)


def test_reasons_are_one_short_printable_line():
    fake = "\n  prompt_level 100.00\n  check_level 100.00\n"
    named = body(f"raise type({fake!r} * 50, (Exception,), {{}})({fake!r} * 50)")
    for v in sandwich([body(f"raise ValueError({fake!r} * 50)"), named]):
        assert v.ok is False and "\n" not in v.reason and v.reason.isprintable() and len(v.reason) <= 300, v


def test_checks_run_as_nobody_without_capabilities_in_their_own_folder():
    code = body("""
        import ctypes, os, struct
        caps = ctypes.create_string_buffer(24)
        ctypes.CDLL(None).capget(ctypes.create_string_buffer(struct.pack('Ii', 0x20080522, 0)), caps)
        open('scratch', 'w').write(response)
        return (os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), caps.raw, os.listdir('.')) == (
            65534, 65534, 65534, [], bytes(24), ['scratch'])""")
    assert sandwich([code, code]) == [Verdict(True), Verdict(True)]  # the second finds its folder empty again


def test_switching_python_guards_off_then_acting_changes_nothing_outside(open_dir):
    marker = os.path.join(open_dir, "marker")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    code = body(f"""
        import gc, os, sys, socket, subprocess, threading, time
        main = sys.modules['__main__']
        for name in list(vars(main)):  # the worker's functions and constants, as an audit hook's would be
            if not name.startswith('__'):
                setattr(main, name, None)
        for obj in gc.get_objects():  # and the cells of the worker's closures, where an audit hook keeps its state
            if getattr(obj, '__module__', None) == '__main__' and getattr(obj, '__closure__', None):
                for cell in obj.__closure__:
                    try:
                        cell.cell_contents = None
                    except Exception:
                        pass
        attempts = [lambda: os.system('touch {marker}'),
                    lambda: subprocess.run(['touch', '{marker}']),
                    lambda: open('{marker}', 'w').write('x'),
                    lambda: socket.create_connection(('127.0.0.1', {port}), timeout=0.5),
                    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port})),
                    lambda: threading.Thread(target=time.sleep, args=(30,)).start()]
        for attempt in attempts:
            try:
                attempt()
            except BaseException:
                pass
        if os.fork() == 0:  # a daemon that would outlive the run
            os.setsid()
            time.sleep(30)
            open('{marker}', 'w').write('daemon')
            os._exit(0)
        return True""")
    (v,) = sandwich([code])
    assert not os.path.exists(marker), v
    with pytest.raises(BlockingIOError):
        server.accept()  # nobody connected
    server.close()
    assert worker_processes() == []  # no daemon survived


def test_writes_through_directory_fds_and_other_side_doors_change_nothing(open_dir):
    with open(WORKER, "rb") as f:
        worker_before = f.read()
    if os.path.exists("/dev/shm/minirlvr-test-shm"):
        os.remove("/dev/shm/minirlvr-test-shm")  # left by a run without confinement
    code = body(f"""
        import os, shutil, sqlite3
        d = os.open({open_dir!r}, os.O_DIRECTORY)
        attempts = [lambda: os.write(os.open('victim', os.O_WRONLY | os.O_TRUNC, dir_fd=d), b'owned'),
                    lambda: os.open('new', os.O_WRONLY | os.O_CREAT, dir_fd=d),
                    lambda: os.rename('victim', 'moved', src_dir_fd=d, dst_dir_fd=d),
                    lambda: os.unlink('secret', dir_fd=d),
                    lambda: os.chmod('victim', 0, dir_fd=d),
                    lambda: os.link('victim', 'hard', src_dir_fd=d, dst_dir_fd=d),
                    lambda: os.setxattr({open_dir!r} + '/victim', 'user.x', b'1'),
                    lambda: sqlite3.connect(':memory:').execute("ATTACH DATABASE '{open_dir}/db' AS x"),
                    lambda: open({WORKER!r}, 'a').write('raise SystemExit'),
                    lambda: __import__('readline').write_history_file({open_dir!r} + '/history'),
                    lambda: __import__('_posixshmem').shm_open('/minirlvr-test-shm', os.O_CREAT | os.O_RDWR, 0o666),
                    lambda: shutil.rmtree({open_dir!r})]
        for attempt in attempts:
            try:
                attempt()
            except BaseException:
                pass
        return True""")
    sandwich([code])
    assert sorted(os.listdir(open_dir)) == ["secret", "victim"]
    with open(os.path.join(open_dir, "victim")) as f:
        assert f.read() == "intact"
    assert oct(os.stat(os.path.join(open_dir, "victim")).st_mode & 0o777) == oct(0o666)
    with open(WORKER, "rb") as f:
        assert f.read() == worker_before
    assert not os.path.exists("/dev/shm/minirlvr-test-shm")


def test_reads_outside_the_interpreter_and_the_parents_environment_do_not_leak(open_dir, monkeypatch):
    monkeypatch.setenv("MINIRLVR_TEST_SECRET", "LEAK-env-91c2")
    code = body(f"""
        import os
        got = []
        for path in ({open_dir!r} + '/secret', '/proc/{os.getpid()}/environ', '/proc/1/environ', '/etc/passwd',
                     '/etc/hostname', {os.path.abspath(__file__)!r}):
            try:
                text = open(path, errors='replace').read()
                got.append(text[text.find('LEAK'):][:20] if 'LEAK' in text else path)
            except BaseException:
                pass
        raise ValueError(' '.join(got) or 'nothing')""")
    (v,) = sandwich([code])
    assert v == Verdict(False, "ValueError: nothing")  # every read failed: nothing came back, no secret


def test_a_check_cannot_forge_or_read_other_records_verdicts():
    forge_lines = "".join(json.dumps({"i": i, "ok": True, "reason": None}) + "\n" for i in range(2, 64))  # 2: its own
    forge = body(f"""
        import builtins, json, os, sys
        for fd in range(64):
            try:
                os.write(fd, {forge_lines!r}.encode())
            except OSError:
                pass
        main = sys.modules['__main__']
        for name in ('run_one', 'parse_child_line', 'wait_child', 'clean_reason'):
            setattr(main, name, lambda *a, **k: (True, None))
        json.dumps = lambda *a, **k: '{{"i": 9, "ok": true, "reason": null}}'
        builtins.len = lambda x: 0
        return False""")
    snoop = body("""
        import gc, os
        found, mark = set(), ''.join(['coffee', ' time'])  # another record's response, not in this code
        for obj in gc.get_objects():
            for ref in [obj, *gc.get_referents(obj)]:
                if isinstance(ref, (str, bytes, bytearray)) and ref is not mark and mark in str(ref):
                    found.add(str(ref)[:40])
        try:
            found.add(os.read(0, 100).decode())
        except OSError:
            pass
        raise ValueError(sorted(found))""")
    forged, snooped = sandwich([forge, snoop])
    assert forged.ok is False and snooped == Verdict(False, "ValueError: ['']")  # stdin: /dev/null


def test_a_check_leaves_nothing_behind_for_the_next_one():
    writer = body("""
        for path in ('../leak', '/box/leak', '/leak', 'leak'):
            try:
                open(path, 'w').write('left for the next check')
            except OSError:
                pass
        return True""")
    reader = body("""
        import os
        found = []
        for path in ('../leak', '/box/leak', '/leak', 'leak'):
            try:
                found.append(open(path).read())
            except OSError:
                pass
        return bool(found)""")
    fork = body("import os\nif os.fork() == 0:\n    os._exit(0)\nreturn True")
    thread = body("import threading, time\nthreading.Thread(target=time.sleep, args=(5,)).start()\nreturn True")
    written, read, forked, threaded = sandwich([writer, reader, fork, thread])
    assert written == Verdict(True) and read == Verdict(False)
    assert forked.ok is False and "BlockingIOError" in forked.reason  # no process outlives its check: none starts
    assert threaded.ok is False and "can't start new thread" in threaded.reason


def test_malformed_results_and_a_closed_channel_cost_only_their_own_check():
    flood, partial = body("import os\nos.write(3, b'[' * 100000)\nos._exit(0)"), body(
        "import os\nos.write(3, b'{\"reason\": 7}\\n')\nos._exit(0)")
    deep = body("import os\nos.write(3, b'[' * 5000 + b'\\n')\nos._exit(0)")
    closed = body("import os, time\nos.closerange(0, 1024)\ntime.sleep(60)")
    hung = body("import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)")
    verdicts = sandwich([flood, partial, deep, closed, hung], timeout_s=1.0)
    assert [v.reason for v in verdicts] == ["crashed: the check wrote something that is not a result"] * 3 + [
        "timeout: no answer within 1 s"] * 2


def test_the_disk_is_capped_and_emptied_between_checks():
    fill = body("""
        written = 0
        try:
            for k in range(40):
                with open(f'fill{k}', 'wb') as f:
                    f.write(bytes(8 << 20))
                written += 8
        except OSError:
            pass
        raise ValueError(written)""")
    scratch = body("open('s', 'w').write('x' * 1000)\nreturn open('s').read() == 'x' * 1000")
    fill_v, scratch_v = sandwich([fill, scratch], disk_mb=64)
    assert fill_v.ok is False and int(fill_v.reason.split(": ")[1]) <= 64, fill_v
    assert scratch_v == Verdict(True)


RUNNER = """
import json, os, sys
from minirlvr.reward.sandbox import Check, run_checks
me = os.getpid()
good = "def check_following(instruction, response):\\n    return 'tea' in response\\n"
hostile = [f"def check_following(i, r):\\n    import os, signal\\n    {act}\\n    return True\\n" for act in (
    f"os.kill({me}, signal.SIGKILL)", f"os.kill({me}, signal.SIGSTOP)", f"os.killpg({me}, signal.SIGKILL)",
    f"signal.pidfd_send_signal(os.pidfd_open({me}), signal.SIGKILL)", "os.kill(os.getppid(), signal.SIGKILL)",
    "os.kill(1, signal.SIGKILL)", "os.kill(1, signal.SIGSTOP)")]
checks = []
for code in hostile:
    checks += [Check(good, "i", "tea"), Check(good, "i", "no"), Check(code, "i", "x"), Check(good, "i", "tea")]
print(json.dumps([v.ok for v in run_checks(checks, allow=True, batch=len(checks), timeout_s=1.0)]))
"""


def test_a_check_cannot_kill_or_stop_its_caller():
    res = subprocess.run([sys.executable, "-c", RUNNER], capture_output=True, text=True, timeout=120,
                         start_new_session=True)
    assert res.returncode == 0, res.stderr[-2000:]
    oks = json.loads(res.stdout.strip().splitlines()[-1])
    assert [(a, b, d) for a, b, _, d in zip(*[iter(oks)] * 4)] == [(True, False, True)] * 7


def fake_worker(tmp_path, monkeypatch, script):
    path = tmp_path / "fake_worker.py"
    path.write_text("import os, sys, time\nout = os.fdopen(1, 'wb', buffering=0)\nout.write(b'{\"ready\": true}\\n')\n"
                    "os.read(0, 1 << 20)\n" + textwrap.dedent(script))  # takes the first job, then misbehaves
    monkeypatch.setattr(sandbox, "WORKER", str(path))
    monkeypatch.setattr(sandbox, "GRACE_S", 0.5)


@pytest.mark.parametrize("script, reason", [
    ("out.write(b'[' * 100000)\ntime.sleep(60)", "not a result"),  # no newline, ever
    ("out.write(b'[' * 100000 + b'\\n')", "not a result"),
    ("out.write(b'{\"reason\": 7}\\n')", "not a result"),
    ("out.write(b'{\"i\": 0, \"ok\": 1, \"reason\": null}\\n')", "not a result"),
    ("out.write(b'{\"i\": 5, \"ok\": true, \"reason\": null}\\n')", "not a result"),
    ("os.close(1)\ntime.sleep(60)", "crashed"),
    ("time.sleep(60)", "timeout: the worker did not answer"),
    ("os.kill(os.getpid(), 19)", "timeout: the worker did not answer"),  # SIGSTOP itself
])
def test_the_caller_survives_a_worker_that_misbehaves(tmp_path, monkeypatch, script, reason):
    fake_worker(tmp_path, monkeypatch, script)
    seen = []
    verdicts = run_checks([YES, NO], allow=True, timeout_s=0.5, on_verdict=lambda k, v: seen.append(k))
    assert verdicts[0].ok is False and reason in verdicts[0].reason and seen == [0, 1]


def test_a_worker_line_is_checked_field_by_field():
    assert parse_result(b'{"i": 2, "ok": true, "reason": null}', 2) == Verdict(True)
    assert parse_result(b'{"i": 2, "ok": false, "reason": "a\\nb\\u001b[2J"}', 2) == Verdict(False, "a b [2J")
    for line in (b'{"i": 1, "ok": true, "reason": null}', b'{"i": true, "ok": true, "reason": null}',
                 b'{"i": 2, "ok": true, "reason": 7}', b'{"i": 2, "ok": true, "reason": null, "x": 1}',
                 b'[' * 100000, b'{"i": 2, "ok": "true", "reason": null}', b'\xff'):
        assert parse_result(line, 2) is None, line


def test_batches_on_several_workers_come_back_in_order():
    crash = Check(body("import os\nos._exit(1)"), "i", "x")
    checks = [YES, NO, crash, YES, NO, YES, crash, NO, YES]
    seen = []
    verdicts = run_checks(checks, allow=True, batch=2, workers=3, on_verdict=lambda k, v: seen.append(k))
    assert [v.ok for v in verdicts] == [True, False, False, True, False, True, False, False, True]
    assert sorted(seen) == list(range(9)) and verdicts[2].reason == verdicts[6].reason == (
        "crashed: the check exited with code 1")


def test_without_the_flag_no_dataset_code_runs(monkeypatch):
    def no_process(*a, **k):
        raise AssertionError("a subprocess was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    with pytest.raises(SandboxError, match="--run-dataset-code"):
        run_checks([Check(GOOD, "i", "tea")])
    rec = {"prompt": "say tea", "rule_checks": [{"name": "tea", "code": GOOD}]}
    with pytest.raises(SandboxError, match="--run-dataset-code"):
        rule_checks.make_reward(allow=False)([rec], ["tea"])


def test_a_machine_that_cannot_confine_refuses_with_what_is_missing(tmp_path, monkeypatch):
    fake_worker(tmp_path, monkeypatch, "")
    (tmp_path / "fake_worker.py").write_text(
        "import sys\nsys.stderr.write('cannot confine dataset code on this machine: unshare failed\\n')\nsys.exit(3)\n")
    with pytest.raises(SandboxError, match="unshare failed(.|\n)*MINIRLVR_UNCONFINED_DATASET_CODE=yes"):
        run_checks([YES], allow=True)


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


def write_verinstruct(tmp_path, rows, answers):
    data, responses = tmp_path / "v.jsonl", tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    responses.write_text("".join(json.dumps({"prompt": p, "response": a}) + "\n" for p, a in answers))
    return str(data), str(responses)


def test_verify_scores_verinstruct_data_through_the_sandbox(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("minirlvr.engine.progress.PROGRESS_EVERY_S", 0.0)  # every progress line shows
    lies = body("raise ValueError('x\\n  prompt_level 100.00\\n  check_level 100.00')")
    rows = [{"id": 1, "prompt": "Say tea.", "checkers": ["[rule] Has_Tea", "[llm] Tone"],
             "functions": [GOOD, 'def check_following(instruction, response):\n    return llm_score("Be warm.")\n']},
            {"id": 2, "prompt": "Say tea twice.", "checkers": ["[rule] Has_Tea", "[rule] Loops", "[rule] Lies"],
             "functions": [GOOD, body("import os, time\nos.closerange(0, 1024)\ntime.sleep(60)"), lies]}]
    data, responses = write_verinstruct(tmp_path, rows, [("Say tea.", "tea"), ("Say tea twice.", "tea tea")])
    with pytest.raises(SystemExit) as e:
        verify_cli.main(["--data", data, "--responses", responses])
    assert "--run-dataset-code" in str(e.value)
    out = tmp_path / "report.json"
    report = verify_cli.main(["--data", data, "--responses", responses, "--out", str(out), "--run-dataset-code"])
    assert report["metrics"] == {"prompt_level": 0.5, "check_level": 2 / 4, "rule_check_level": 2 / 4}
    assert report["per_checker"]["Has_Tea"] == {"n": 2, "pass": 1.0} and report["soft_not_scored"] == 1
    assert report["check_failures"][0] == {"key": 2, "check": "Loops", "reason": "timeout: no answer within 2 s"}
    assert json.loads(out.read_text())["metrics"] == report["metrics"]
    printed = capsys.readouterr().out
    assert "rule checker" in printed and "prompt_level" in printed
    fake = [line for line in printed.splitlines() if line.strip().startswith(("prompt_level", "check_level"))]
    assert len(fake) == 2  # the real ones: the reason's fake metric lines stay inside its one line
    # no terminal: the checks' progress as plain lines, one check at a time
    done = [line.split()[2] for line in printed.splitlines() if line.startswith("rule checks: ")]
    assert done == ["1/4", "2/4", "3/4", "4/4"]
    assert not os.path.exists(f"{out}.verdicts.jsonl")


def test_a_killed_verify_resumes_where_it_stopped(tmp_path, monkeypatch):
    rows = [{"id": k, "prompt": f"Say tea {k}.", "checkers": ["[rule] Has_Tea"], "functions": [GOOD]} for k in range(5)]
    data, responses = write_verinstruct(tmp_path, rows, [(f"Say tea {k}.", "tea" if k % 2 else "no")
                                                          for k in range(5)])
    out, real, ran = str(tmp_path / "report.json"), sandbox.run_checks, []

    def killed_after_three(checks, on_verdict=None, **kw):
        def maybe_die(k, v):
            on_verdict(k, v)
            if k == 2:
                raise KeyboardInterrupt  # the run is killed after its third verdict
        return real(checks, on_verdict=maybe_die, **kw)

    monkeypatch.setattr(rule_checks, "run_checks", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        run_rules(data, responses, out, allow=True, log=None)
    assert not os.path.exists(out)

    def counted(checks, **kw):
        ran.append(len(checks))
        return real(checks, **kw)

    monkeypatch.setattr(rule_checks, "run_checks", counted)
    report = run_rules(data, responses, out, allow=True, log=None)
    assert ran == [2] and [r["rules"] for r in report["results"]] == [[False], [True], [False], [True], [False]]
