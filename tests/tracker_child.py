"""A child process for the multi-process tests: ``python tracker_child.py MODE URI ...``.

Modes: ``open`` opens the tracker (racing other children to create the schema) and
records one experiment; ``write N`` records N full lifecycles (tags, components, end);
``write-tasks N T`` the same from T concurrent tasks on an async tracker;
``churn`` starts one long experiment, says ``started <id>``, then writes lifecycles and
request records without pause until killed; ``hang`` starts an experiment with a short
heartbeat, says ``started <id>`` on stdout and waits to be killed. The ``exit-*`` modes
say ``started <id>`` and let the process end while that experiment is still open:
``exit-thread`` (a daemon thread blocked inside ``track()``), ``exit-generator`` (a
suspended generator holding ``track()``), ``exit-manual`` (``track().__enter__()``
never left), ``exit-sys-exit`` (``sys.exit(3)`` inside ``track()``), ``exit-dropped``
(the tracker garbage-collected unclosed), ``exit-async-closed`` (a task inside ``async
with tracker.track()`` when the tracker is closed) and ``exit-async-open``
(``asyncio.run()`` ending with that task still inside, the tracker never closed).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator

from healthchain.tracking import AsyncExperimentTracker, ExperimentTracker


def _open_at_exit(mode: str, uri: str) -> None:
    """Leave one experiment open in the way ``mode`` names, and return."""
    if mode.startswith("exit-async"):
        asyncio.run(_open_at_loop_end(mode, uri))
        return
    tracker = ExperimentTracker(uri)
    if mode == "exit-thread":
        entered = threading.Event()

        def blocked() -> None:
            with tracker.track("in a daemon thread") as experiment_id:
                print(f"started {experiment_id}", flush=True)
                entered.set()
                threading.Event().wait()

        threading.Thread(target=blocked, daemon=True).start()
        entered.wait()
    elif mode == "exit-generator":

        def steps() -> Iterator[str]:
            with tracker.track("in a generator") as experiment_id:
                yield experiment_id
                yield experiment_id

        suspended = steps()
        print(f"started {next(suspended)}", flush=True)
        globals()["suspended"] = suspended  # kept alive until the interpreter's teardown
    elif mode == "exit-manual":
        block = tracker.track("entered by hand")
        print(f"started {block.__enter__()}", flush=True)
        globals()["block"], globals()["tracker"] = block, tracker  # as a script's would be
    elif mode == "exit-sys-exit":
        with tracker.track("sys.exit() inside") as experiment_id:
            print(f"started {experiment_id}", flush=True)
            sys.exit(3)
    elif mode == "exit-dropped":
        # Started, never ended, and the tracker dropped unclosed: collected before exit.
        print(f"started {tracker.start_experiment('dropped')}", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


async def _open_at_loop_end(mode: str, uri: str) -> None:
    tracker = AsyncExperimentTracker(uri)
    entered = asyncio.Event()

    async def blocked() -> None:
        async with tracker.track("in a task") as experiment_id:
            print(f"started {experiment_id}", flush=True)
            entered.set()
            await asyncio.Event().wait()

    # Held until asyncio.run() cancels it on the way out (the loop keeps tasks weakly).
    globals()["task"] = asyncio.create_task(blocked())
    await entered.wait()
    if mode == "exit-async-closed":
        await tracker.aclose()


async def _write_from_tasks(uri: str, count: int, tasks: int) -> None:
    """``count`` full lifecycles from ``tasks`` concurrent tasks on one async tracker."""
    numbers = iter(range(count))

    async def worker(tracker: AsyncExperimentTracker) -> None:
        for i in numbers:
            experiment_id = await tracker.start_experiment(
                f"w{i}",
                tags={"writer": os.getpid(), "i": i},
                components=[{"name": "a", "type": "t", "stage": "s"}, {"name": "b"}],
            )
            await tracker.end_experiment(experiment_id)

    tracker = AsyncExperimentTracker(uri, project_name=f"writer-{os.getpid()}")
    async with tracker, asyncio.TaskGroup() as tg:
        for _ in range(tasks):
            tg.create_task(worker(tracker))


def main() -> None:
    mode, uri = sys.argv[1], sys.argv[2]
    if mode == "open":
        barrier_file = sys.argv[3]
        # Start together: wait until the parent removes the barrier file.
        import time

        while os.path.exists(barrier_file):
            time.sleep(0.001)
        with ExperimentTracker(uri) as tracker:
            tracker.end_experiment(tracker.start_experiment("child"))
        print("ok", flush=True)
    elif mode == "write":
        count = int(sys.argv[3])
        with ExperimentTracker(uri, project_name=f"writer-{os.getpid()}") as tracker:
            for i in range(count):
                experiment_id = tracker.start_experiment(
                    f"w{i}",
                    tags={"writer": os.getpid(), "i": i},
                    components=[{"name": "a", "type": "t", "stage": "s"}, {"name": "b"}],
                )
                tracker.end_experiment(experiment_id)
        print("ok", flush=True)
    elif mode == "write-tasks":
        asyncio.run(_write_from_tasks(uri, int(sys.argv[3]), int(sys.argv[4])))
        print("ok", flush=True)
    elif mode == "churn":
        from datetime import UTC, datetime

        from healthchain.tracking import RequestRecord

        tracker = ExperimentTracker(uri, heartbeat_interval=float(sys.argv[3]))
        experiment_id = tracker.start_experiment("doomed")
        print(f"started {experiment_id}", flush=True)
        seq = 0
        while True:
            other = tracker.start_experiment("churn", tags={"seq": seq}, components=[{"name": "x"}])
            batch = [RequestRecord(seq + k, datetime.now(UTC), 1.0, 200) for k in range(20)]
            tracker.log_requests(experiment_id, batch)
            tracker.end_experiment(other)
            seq += 20
    elif mode == "hang":
        tracker = ExperimentTracker(uri, heartbeat_interval=float(sys.argv[3]))
        experiment_id = tracker.start_experiment("doomed")
        print(f"started {experiment_id}", flush=True)
        threading.Event().wait()
    elif mode.startswith("exit-"):
        _open_at_exit(mode, uri)


if __name__ == "__main__":
    main()
