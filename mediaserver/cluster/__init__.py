"""Many nodes sharing Redis: node registry, room placement with fenced leases, and a
signalling relay so that any node can terminate a client's WebSocket.

Redis keys (``{p}`` is the prefix, "ms:" by default):

    {p}node:{node_id}        JSON {id, load, draining, started}; PX lease, renewed by
                             the node's heartbeat: a node whose key expired is dead
    {p}nodes                 set of node ids ever registered (dead ones are pruned)
    {p}room:{room}:owner     "{node_id}|{token}"; PX lease renewed by the owner only
    {p}room:{room}:fence     INCR counter: the fencing token of each new lease
    {p}room:{room}:host      the node that got the room's last lease (kept a day): after
                             a Redis restart, a room is placed again only once that
                             node registered again (and so re-created its leases)
    {p}placed:{node}         INCR counter: rooms placed on the node that its reported
                             load does not count yet (its heartbeat subtracts the rooms
                             it started hosting since the last one)
    {p}relay:{node_id}       pub/sub channel of signalling frames for that node (msgpack)
    {p}singleton:{name}      node id running a cluster-wide job (the webhook dispatcher);
                             PX lease renewed by that node
"""

from .cluster import Cluster, Lease, Unavailable

__all__ = ["Cluster", "Lease", "Unavailable"]
