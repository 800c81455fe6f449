"""The DAG of a run laid out for an inline SVG: one column per topological level (a
task's longest path from a root), tasks stacked within their column, edges as curves."""

from __future__ import annotations

from dataclasses import dataclass

from hatchlite.models import V1TaskSummary, WorkflowRunShapeItemForWorkflowRunDetails

NODE_W, NODE_H = 168, 48
GAP_X, GAP_Y, PAD = 56, 18, 8


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    name: str
    status: str  # QUEUED, RUNNING, ... or PENDING for a task not created yet
    duration: int | None
    evicted: bool
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Edge:
    path: str  # an SVG path, parent's right edge to child's left edge


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def _levels(shape: list[WorkflowRunShapeItemForWorkflowRunDetails]) -> dict[str, int]:
    """Each task's longest distance from a root (Kahn's order; a cycle cannot be stored,
    but a task left unordered still gets level 0)."""
    ids = [item.task_external_id for item in shape]
    children = {item.task_external_id: item.children_external_ids for item in shape}
    indegree = dict.fromkeys(ids, 0)
    for kids in children.values():
        for kid in kids:
            if kid in indegree:
                indegree[kid] += 1
    level = dict.fromkeys(ids, 0)
    ready = [i for i in ids if indegree[i] == 0]
    while ready:
        current = ready.pop(0)
        for kid in children.get(current, []):
            if kid not in indegree:
                continue
            level[kid] = max(level[kid], level[current] + 1)
            indegree[kid] -= 1
            if indegree[kid] == 0:
                ready.append(kid)
    return level


def layout(
    shape: list[WorkflowRunShapeItemForWorkflowRunDetails], tasks: list[V1TaskSummary]
) -> Graph:
    """Place the run's tasks (`shape`: every task of the run, created or not) and the
    edges between them; a task's status and duration come from `tasks`."""
    by_id = {t.task_external_id: t for t in tasks}
    levels = _levels(shape)
    columns: dict[int, list[WorkflowRunShapeItemForWorkflowRunDetails]] = {}
    for item in shape:
        columns.setdefault(levels[item.task_external_id], []).append(item)
    nodes: dict[str, Node] = {}
    for column, items in sorted(columns.items()):
        for row, item in enumerate(items):
            task = by_id.get(item.task_external_id)
            nodes[item.task_external_id] = Node(
                id=item.task_external_id,
                name=item.task_name,
                status=task.status.value if task else "PENDING",
                duration=task.duration if task else None,
                evicted=bool(task and task.is_evicted),
                x=PAD + column * (NODE_W + GAP_X),
                y=PAD + row * (NODE_H + GAP_Y),
            )
    edges = []
    for item in shape:
        parent = nodes[item.task_external_id]
        for kid_id in item.children_external_ids:
            kid = nodes.get(kid_id)
            if kid is None:
                continue
            x1, y1 = parent.x + NODE_W, parent.y + NODE_H // 2
            x2, y2 = kid.x, kid.y + NODE_H // 2
            mid = (x1 + x2) // 2
            edges.append(Edge(f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"))
    width = max((n.x for n in nodes.values()), default=0) + NODE_W + PAD
    height = max((n.y for n in nodes.values()), default=0) + NODE_H + PAD
    return Graph(list(nodes.values()), edges, width, height)
