"""Reading runs back from the Prefect API (for ``stylize status``)."""

from __future__ import annotations

import uuid

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort


def describe_runs(run_id: str | None, limit: int = 10) -> list[str]:
    lines = []
    with get_client(sync_client=True) as client:
        if run_id:
            runs = [client.read_flow_run(uuid.UUID(run_id))]
        else:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["stylize-manifest"])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=limit,
            )
        for fr in runs:
            state = fr.state.name if fr.state else "?"
            lines.append(
                f"{fr.id}  {fr.name}  {state}  started {fr.start_time}  {fr.parameters.get('manifest')}"
            )
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[fr.id]))
            )
            for art in artifacts:
                if art.type == "table" and art.key == "run-summary":
                    lines.append(f"    summary: {art.description}")
                elif art.type == "progress":
                    lines.append(f"    {art.description}: {art.data:.0f}%")
    return lines
