// Command forbidden is a test guest that reads a file, so it imports WASI's
// path_open: the host must refuse it at load.
package main

import (
	"os"

	"github.com/vrsky/vrsky/abi/guest"
)

func init() {
	guest.Process(func(m *guest.Message) error {
		b, err := os.ReadFile("/etc/passwd")
		if err != nil {
			return err
		}
		m.SetData(b)
		return nil
	})
}

func main() {}
