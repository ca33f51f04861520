package host

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSMessaging implements Messaging over a NATS connection.
type NATSMessaging struct {
	// NC is the connection publishes and requests go through.
	NC *nats.Conn
}

var _ Messaging = NATSMessaging{}

// Publish implements Messaging.
func (n NATSMessaging) Publish(_ context.Context, subject string, data []byte) error {
	return n.NC.Publish(subject, data)
}

// Request implements Messaging.
func (n NATSMessaging) Request(ctx context.Context, subject string, data []byte, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := n.NC.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, err
	}
	return msg.Data, nil
}

// NATSKV implements KV over a JetStream key-value bucket.
type NATSKV struct {
	// KV is the bucket; host keys ("<tenant>.<integration>.<key>") are
	// valid NATS KV keys.
	KV jetstream.KeyValue
}

var _ KV = NATSKV{}

// Get implements KV.
func (n NATSKV) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := n.KV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return e.Value(), nil
}

// Put implements KV.
func (n NATSKV) Put(ctx context.Context, key string, value []byte) error {
	_, err := n.KV.Put(ctx, key, value)
	return err
}

// Delete implements KV.
func (n NATSKV) Delete(ctx context.Context, key string) error {
	err := n.KV.Delete(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}
