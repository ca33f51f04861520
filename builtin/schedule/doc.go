// Package schedule holds the built-in schedule source: it emits a message
// on each tick of a cron expression, exactly once per tick across restarts
// and across the nodes that run the integration.
//
// Exactly once comes from three things together: the runtime runs the
// source on one node at a time (a lease), each tick's message id is derived
// from the integration and the tick's time (so two nodes that both think
// they lead, for a moment, write one message: JetStream drops the
// duplicate), and the last tick made durable is kept in the connector's
// state, so a restarted source catches up on the ticks it missed instead
// of skipping or repeating them.
package schedule
