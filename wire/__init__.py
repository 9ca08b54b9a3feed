"""The wire: typed messages and their validation (:mod:`wire.messages`), track events
(:mod:`wire.events`), ZeroMQ sockets and CURVE (:mod:`wire.transport`), and the shared-memory
frame ring (:mod:`wire.frame_ring`). Imports only the base layer."""
