"""The README cannot drift from what the kit prints: every transcript in its "Troubleshooting" section is run here
(each in a temporary folder set up as the README describes) and its lines must be the first lines the command
prints today; the kernel backends the README lists are the ones the code accepts; the words it quotes from
`verify`'s output are in that output."""

import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
# run.py's own code, with this checkout's minirlvr first on the path (run.py itself drops the checkout's folder from
# sys.path, which would pick an installed copy of another checkout)
TRAMPOLINE = "import sys; from minirlvr.cli import main; main(sys.argv[1:])"


def section(title):
    start = README.index(f"\n## {title}\n")
    return README[start:README.index("\n## ", start + 1)]


def transcripts():
    """[(argv after `python run.py`, [expected lines], elided)] from the section's ```console blocks."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", section("Troubleshooting"), re.S):
        command, *lines = block.rstrip("\n").split("\n")
        assert command.startswith("$ python run.py"), command
        elided = bool(lines) and lines[-1].startswith("[...")
        out.append((shlex.split(command[len("$ python run.py"):]), lines[:-1] if elided else lines, elided))
    return out


def an_earlier_run(folder):
    run = os.path.join(folder, "runs", "miniature")
    for sub in ("data", "runs"):
        os.makedirs(os.path.join(run, sub))
    for name in ("attention.png", "config.json", "curves.png", "log.txt", "metrics.jsonl", "results.json",
                 "results.md", "start_attention.json", "start_eval.json"):
        open(os.path.join(run, name), "w").close()


def a_latin1_file(folder):
    with open(os.path.join(folder, "latin1.jsonl"), "wb") as f:
        f.write('{"prompt": "café au lait", "instruction_id_list": []}\n'.encode("latin-1"))


# each transcript's command -> what its folder holds first (the README says it in words)
SETUPS = {
    "": an_earlier_run,
    "train --model=Qwen/Qwen2.5-0.5B-Instruct --data=train.jsonl --group_size=1": lambda folder: None,
    "data convert --format ifeval --input latin1.jsonl --out records.jsonl": a_latin1_file,
}


def test_every_troubleshooting_transcript_is_what_the_command_prints_today(tmp_path):
    found = transcripts()
    assert sorted(" ".join(argv) for argv, _, _ in found) == sorted(SETUPS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    for i, (argv, expected, elided) in enumerate(found):
        folder = tmp_path / str(i)
        folder.mkdir()
        SETUPS[" ".join(argv)](str(folder))
        res = subprocess.run([sys.executable, "-c", TRAMPOLINE, *argv], cwd=folder, env=env, capture_output=True,
                             text=True, timeout=300)
        printed = [line.rstrip() for line in (res.stdout + res.stderr).rstrip("\n").split("\n")]
        assert res.returncode == 1, (argv, res.stderr[-2000:])
        assert "Traceback" not in res.stderr, (argv, res.stderr[-2000:])
        assert printed[:len(expected)] == [line.rstrip() for line in expected], argv
        assert elided == (len(printed) > len(expected)), (argv, "the README shows all of it, or says [...]")


def test_the_readme_lists_the_backends_the_kernels_accept():
    from minirlvr.kernels import attention, logprobs

    for env, backends in (("MINIRLVR_LOGPROB_BACKEND", logprobs.BACKENDS),
                          ("MINIRLVR_ATTENTION_BACKEND", attention.BACKENDS)):
        listed = re.search(rf"`{env}` = ((?:`\w+`(?: \| )?)+)", re.sub(r"\s+", " ", README))
        assert listed and re.findall(r"`(\w+)`", listed.group(1)) == list(backends), env


def test_verify_says_not_scored_as_the_readme_quotes_it():
    from minirlvr.evaluation.verify import format_report

    quoted = re.search(r"`(responses whose prompt is not in the data \(not scored\))`", re.sub(r"\s+", " ", README))
    report = {"n_prompts": 1, "n_instructions": 1, "metrics": {}, "per_instruction": {}, "missing_responses": [],
              "unmatched_responses": [{"where": "responses.jsonl:7", "prompt": "an edited prompt"}]}
    assert quoted and quoted.group(1) in format_report(report)
