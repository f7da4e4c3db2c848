"""Batch jobs in processes at the lowest priority: an enrolment there is the enrolment made here, a
render writes its MP4 and stops when its progress is refused, the queue is bounded (one more is
``busy`` at once, and so is a request beyond the places), and a job process that dies fails its job and is replaced."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from server.workers.jobs import NICE, JobLost, Jobs, JobsBusy
from sonic_rt.config import GeometryParams
from sonic_rt.errors import SonicError
from sonic_rt.render.identity import enroll
from tests.conftest import png_bytes


@pytest.fixture(scope="module")
def jobs():
    jobs = Jobs(processes=1, queue=1)
    yield jobs
    jobs.close()


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_job_processes_run_at_the_lowest_priority(jobs):
    assert niceness(jobs.load()["processes"][0]["pid"]) == NICE


def test_an_enrolment_in_a_job_process_is_the_enrolment_made_here(jobs, astronaut, analyzer):
    image = png_bytes(astronaut)
    there = jobs.enroll(image, GeometryParams())
    here = enroll(image, GeometryParams(), analyzer)
    assert there.image_sha256 == here.image_sha256 and there.out_size == here.out_size
    assert np.array_equal(there.plate, here.plate) and np.array_equal(there.landmarks, here.landmarks)


def test_a_render_writes_its_video_and_reports_progress(jobs, astronaut_identity, sentence, tmp_path):
    seen = []
    result = jobs.render(astronaut_identity, sentence, tmp_path / "out.mp4", lambda done, total: seen.append(total),
                         watermark=0x1234ABCD)  # fmt: skip
    assert result.output.stat().st_size > 0 and result.watermark == 0x1234ABCD
    assert seen and seen[-1] == result.frames


class Refused(SonicError):
    code = "quota_exceeded"


def test_a_render_whose_progress_is_refused_stops_and_leaves_nothing(jobs, astronaut_identity, sentence, tmp_path):
    def refuse(done, total):
        raise Refused("no minutes left")

    with pytest.raises(Refused):
        jobs.render(astronaut_identity, sentence, tmp_path / "out.mp4", refuse)
    assert not (tmp_path / "out.mp4").exists()
    assert jobs.render(astronaut_identity, sentence[:16000], tmp_path / "next.mp4").frames == 25  # it goes on


def test_one_job_more_than_the_processes_and_the_queue_is_busy_at_once(jobs, astronaut_identity, sentence, tmp_path):
    long = np.tile(sentence, 4)
    results, started = [], threading.Event()

    def render(name):
        started.set()
        results.append(jobs.render(astronaut_identity, long, tmp_path / name))

    threads = [threading.Thread(target=render, args=(f"{k}.mp4",)) for k in range(2)]  # one runs, one waits
    for thread in threads:
        thread.start()
        started.wait(10)
        time.sleep(0.3)
    assert (jobs.running, jobs.waiting) == (1, 1) and jobs.full
    t0 = time.monotonic()
    with pytest.raises(JobsBusy, match="limit of 1 batch job"):
        jobs.render(astronaut_identity, sentence, tmp_path / "more.mp4")
    assert time.monotonic() - t0 < 1.0  # refused at once, not after the others
    for thread in threads:
        thread.join(120)
    assert len(results) == 2 and (jobs.running, jobs.waiting) == (0, 0) and not jobs.full


def test_requests_for_jobs_beyond_their_places_are_busy_and_a_place_freed_is_taken_again(jobs):
    assert jobs.places == 2  # one process, a queue of one
    first, second = jobs.hold_request(), jobs.hold_request()
    assert jobs.requests == 2 and jobs.load()["requests"] == 2
    with pytest.raises(JobsBusy, match="limit of 1 batch job"):
        jobs.hold_request()  # a third request in flight: refused before it is read
    assert jobs.requests == 2
    with first:
        pass
    with jobs.hold_request():  # the place the first freed
        assert jobs.requests == 2
    second.close()
    assert jobs.requests == 0


def test_a_job_process_that_dies_fails_its_job_and_is_replaced(jobs, astronaut_identity, sentence, tmp_path):
    pid = jobs.load()["processes"][0]["pid"]
    killed = threading.Timer(1.0, os.kill, (pid, signal.SIGKILL))
    killed.start()
    with pytest.raises(JobLost, match="stopped before it was done"):
        jobs.render(astronaut_identity, np.tile(sentence, 8), tmp_path / "out.mp4")
    deadline = time.monotonic() + 120
    while jobs.load()["processes"][0].get("pid", pid) == pid or not jobs.load()["processes"][0]["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert jobs.render(astronaut_identity, sentence, tmp_path / "again.mp4").frames > 0
