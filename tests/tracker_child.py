"""A child process for the multi-process tests: ``python tracker_child.py MODE URI ...``.

Modes: ``open`` opens the tracker (racing other children to create the schema) and
records one experiment; ``write N`` records N full lifecycles (tags, components, end);
``churn`` starts one long experiment, says ``started <id>``, then writes lifecycles and
request records without pause until killed; ``hang`` starts an experiment with a short
heartbeat, says ``started <id>`` on stdout and waits to be killed.
"""

from __future__ import annotations

import os
import sys
import threading

from healthchain.tracking import ExperimentTracker


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


if __name__ == "__main__":
    main()
