// Command trivial is the benchmark's trivial filter: drop messages whose
// first byte is 'x', pass the others unchanged.
package main

import "github.com/vrsky/vrsky/abi/guest"

func init() {
	guest.Process(func(m *guest.Message) error {
		if d := m.Data(); len(d) > 0 && d[0] == 'x' {
			m.Drop()
		}
		return nil
	})
}

func main() {}
