package guest_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vrsky/vrsky/abi/guest"
)

// A converter: upper-case every payload. Register in init: a reactor's
// main is never called.
func ExampleProcess() {
	guest.Process(func(m *guest.Message) error {
		m.SetData(bytes.ToUpper(m.Data()))
		return nil
	})
}

// A splitter with a configuration read once per instance: one output per
// line, empty lines dropped, a retryable failure when a dependency is down.
func ExampleSetup() {
	var sep []byte
	guest.Setup(func(config []byte) error {
		sep = []byte("\n")
		if len(config) == 0 {
			return errors.New("config required")
		}
		return nil
	})
	guest.Process(func(m *guest.Message) error {
		n := 0
		for _, line := range bytes.Split(m.Data(), sep) {
			if len(line) == 0 {
				continue
			}
			if err := m.Emit(line); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			m.Drop()
		}
		return nil
	})
}

// Capabilities: publish on one of the tenant's subjects, keep state in the
// integration's key-value store.
func ExamplePublish() {
	guest.Process(func(m *guest.Message) error {
		if err := guest.Publish("vrsky.acme.audit", m.Data()); err != nil {
			return guest.Retryable(fmt.Errorf("audit: %w", err))
		}
		count, err := guest.KVGet("count")
		if err != nil && !errors.Is(err, guest.ErrNotFound) {
			return err
		}
		return guest.KVPut("count", append(count, '+'))
	})
}
