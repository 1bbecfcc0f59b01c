"""The technician's status page: a small read-only web site served by a companion process of
the daemon (`edgenode status-page`, started by the daemon when `[status_page] enabled`).

It asks the daemon over its local control socket (edgenode.daemon.control_socket.request) and
never holds anything the detection loop needs: one poll a second whatever the number of
browsers, pushed to them as server-sent events. Read-only by design: no route arms, engages
or touches the relay. Imports config, the control socket's client and aiohttp; nothing else of
the daemon, never control, link or hal.
"""
