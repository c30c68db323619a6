"""A cell's runs over time: finished (skip), claimed by a live job (skip or wait), interrupted
(resume), and the claim that makes one process at a time train a cell.

A claim is a small run in the experiment `dedl.claims` of the tracking store, tagged with the
cell key, host, process id and a heartbeat that a thread of the owning job renews. Living in
the store, claims work across hosts (SLURM nodes sharing one MLflow server) as well as between
processes of one machine. Two jobs that claim a cell at once both create a claim, then both
read all live claims of the cell and agree that the oldest wins; the other withdraws. A claim
is live while it is RUNNING and its owner is: on the same host the process must exist, on
another host the heartbeat must be younger than the lease. So a crashed (kill -9) owner frees
the cell at once on its own host and after `claim.lease_s` elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from mlflow.entities import Run

from dedl_experiments.tracking import mlflow_store, run_tags
from dedl_experiments.run.stop import STOP

log = logging.getLogger(__name__)
T = run_tags.TAG
CLAIM_TAG = f"{T}claim_of"
HEARTBEAT_TAG = f"{T}heartbeat"


class CellBusy(RuntimeError):
    """Another live job holds the cell's claim."""

    def __init__(self, holder: Run):
        tags = holder.data.tags
        beat = float(tags.get(HEARTBEAT_TAG, 0))
        super().__init__(f"held by {tags.get(f'{T}run_name', '?')} on host {tags.get(f'{T}host', '?')} "
                         f"pid {tags.get(f'{T}pid', '?')} (heartbeat {time.time() - beat:.0f}s ago)")
        self.holder = holder


@dataclass(frozen=True)
class ClaimSettings:
    heartbeat_s: float = 30.0
    lease_s: float = 180.0
    on_busy: str = "skip"  # skip | wait

    @classmethod
    def from_config(cls, cfg) -> ClaimSettings:
        claim = cfg.get("claim") or {}
        return cls(float(claim.get("heartbeat_s", cls.heartbeat_s)),
                   float(claim.get("lease_s", cls.lease_s)), str(claim.get("on_busy", cls.on_busy)))


def finished_run(tracker: mlflow_store.Tracker, key: str) -> Run | None:
    """The newest FINISHED run of the cell, if any."""
    return next((r for r in tracker.runs_of_cell(key) if r.info.status == "FINISHED"), None)


def interrupted_runs(tracker: mlflow_store.Tracker, key: str) -> list[Run]:
    """Runs of the cell that stopped without a result and may be resumed, newest first. Only
    the holder of the cell's claim asks, so a RUNNING run here has lost its process."""
    return [r for r in tracker.runs_of_cell(key) if r.info.status in ("KILLED", "RUNNING")]


def _process_alive(host: str | None, pid: str | None) -> bool | None:
    """Whether the process exists: True/False on this host, None (unknown) on another."""
    if host != socket.gethostname() or not (pid or "").isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_is_live(claim: Run, lease_s: float, now: float | None = None) -> bool:
    if claim.info.status != "RUNNING":
        return False
    tags = claim.data.tags
    alive = _process_alive(tags.get(f"{T}host"), tags.get(f"{T}pid"))
    if alive is False:
        return False
    beat = float(tags.get(HEARTBEAT_TAG, 0) or 0)
    return (now or time.time()) - beat < lease_s


class Claim:
    """This process's claim on a cell; renew it with a heartbeat thread, release it at the end."""

    def __init__(self, tracker: mlflow_store.Tracker, run_id: str, settings: ClaimSettings):
        self.tracker, self.run_id, self.settings = tracker, run_id, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="cell-claim-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            try:
                self.tracker.set_tags(self.run_id, {HEARTBEAT_TAG: f"{time.time():.3f}"})
            except Exception as err:  # a store hiccup must not kill training; the next beat retries
                log.warning("claim heartbeat failed: %s", err)

    def release(self, stopping: bool = False) -> None:
        """End the claim; `stopping` (the job ends on an error or a signal): in seconds, even if
        the store is gone, since an unreleased claim frees itself (its process is gone)."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            with self.tracker.failing_fast() if stopping else contextlib.nullcontext():
                self.tracker.end(self.run_id, "FINISHED")
        except Exception as err:  # an unreleased claim expires with its lease
            (log.info if stopping else log.warning)(
                "could not release the claim %s: %s", self.run_id, (str(err).splitlines() or [""])[0][:200])

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, kind, *exc) -> None:
        self.release(stopping=kind is not None)


def _claims_of(tracker: mlflow_store.Tracker, experiment_id: str, key: str) -> list[Run]:
    return tracker.client.search_runs(
        [experiment_id], filter_string=f"tags.`{CLAIM_TAG}` = '{key}' and attributes.status = 'RUNNING'",
        max_results=1000)


def try_claim(tracker: mlflow_store.Tracker, key: str, name: str, settings: ClaimSettings) -> Claim:
    """Claim the cell or raise CellBusy naming the live holder."""
    experiment_id = tracker.experiment_id_of(run_tags.CLAIMS_EXPERIMENT)
    tags = {CLAIM_TAG: key, f"{T}run_name": name, f"{T}host": socket.gethostname(),
            f"{T}pid": str(os.getpid()), HEARTBEAT_TAG: f"{time.time():.3f}"}
    mine = tracker.start(name, tags, experiment_id=experiment_id).info.run_id
    live = []
    for claim in _claims_of(tracker, experiment_id, key):
        if claim.info.run_id == mine or claim_is_live(claim, settings.lease_s):
            live.append(claim)
        else:  # a dead owner's claim: close it so that later lookups skip it
            tracker.end(claim.info.run_id, "KILLED")
    winner = min(live, key=lambda r: (r.info.start_time, r.info.run_id))
    if winner.info.run_id == mine:
        return Claim(tracker, mine, settings)
    tracker.client.delete_run(mine)
    raise CellBusy(winner)


def claim_cell(tracker: mlflow_store.Tracker, key: str, name: str, settings: ClaimSettings) -> Claim:
    """Claim the cell; with on_busy=wait, poll until the holder is gone, else raise CellBusy."""
    while True:
        try:
            return try_claim(tracker, key, name, settings)
        except CellBusy as busy:
            if settings.on_busy != "wait":
                raise
            log.info("%s: cell %s is %s; waiting", name, key, busy)
            deadline = time.monotonic() + max(1.0, min(settings.heartbeat_s, 10.0))
            while time.monotonic() < deadline:
                STOP.check()  # Ctrl-C or SIGTERM while waiting ends the job like any stop
                time.sleep(0.2)


def adopt_legacy_run(tracker: mlflow_store.Tracker, legacy_key: str, key: str, dataset_name: str,
                     digest: str) -> Run | None:
    """Re-key the newest FINISHED run recorded before data digests (same config, same dataset
    name, no digest) as this cell's, on the user's word that it trained on this data
    (`adopt_legacy_runs=true`); its fold runs, if any, follow it. None if there is none."""
    candidates = [r for r in tracker.runs_of_cell(legacy_key)
                  if r.info.status == "FINISHED" and f"{T}dataset_digest" not in r.data.tags
                  and r.data.params.get("dataset.name") == dataset_name]
    if not candidates:
        return None
    run = candidates[0]
    tags = {f"{T}dataset_digest": digest, f"{T}dataset_name": dataset_name,
            f"{T}adopted_legacy_key": legacy_key}
    tracker.set_tags(run.info.run_id, tags | {f"{T}cell_key": key})
    children = tracker.client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    for child in children:
        tracker.set_tags(child.info.run_id, tags)
    log.info("adopted MLflow run %s (recorded before data digests) as cell %s on data %s",
             run.info.run_id, key, digest[:8])
    return tracker.client.get_run(run.info.run_id)
