"""The code dump of `catalyst-dl run --hydra`, safe for fold jobs that share a log directory."""

from __future__ import annotations

import threading
from pathlib import Path

from fusion_runners.code_dump import dump_code, install


def test_dump_code_copies_catalyst_and_the_experiment_folder(tmp_path):
    expdir = Path(__file__).resolve().parents[1] / "runners"
    dump_code(tmp_path, expdir)
    assert (tmp_path / "code" / "catalyst" / "__init__.py").is_file()
    assert (tmp_path / "code" / "runners" / "base.py").is_file()
    # a second dump replaces the first and leaves no temporary folders
    dump_code(tmp_path, expdir)
    assert sorted(p.name for p in (tmp_path / "code").iterdir()) == ["catalyst", "runners"]


def test_concurrent_dumps_into_one_logdir_all_succeed(tmp_path):
    expdir = Path(__file__).resolve().parents[1] / "runners"
    errors: list[BaseException] = []

    def job() -> None:
        try:
            for _ in range(3):
                dump_code(tmp_path, expdir)
        except BaseException as err:  # collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert (tmp_path / "code" / "runners" / "base.py").is_file()
    assert sorted(p.name for p in (tmp_path / "code").iterdir()) == ["catalyst", "runners"]


def test_install_replaces_catalysts_dump_in_the_hydra_entry_point():
    from catalyst.dl.scripts import hydra_run

    install()
    assert hydra_run.dump_code is dump_code
