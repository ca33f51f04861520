// Command grow is a test guest that grows its linear memory: a payload of
// "N" allocates N MiB, fills it and keeps it, then checks every buffer it
// has kept so far. The output is the MiB held. Contents that survive later
// growth mean memory.grow kept them.
package main

import (
	"errors"
	"strconv"

	"github.com/vrsky/vrsky/abi/guest"
)

var held [][]byte

func init() {
	guest.Process(func(m *guest.Message) error {
		n, err := strconv.Atoi(string(m.Data()))
		if err != nil {
			return err
		}
		b := make([]byte, n<<20)
		for i := range b {
			b[i] = byte(len(held) + i)
		}
		held = append(held, b)
		total := 0
		for k, h := range held {
			for i := range h {
				if h[i] != byte(k+i) {
					return errors.New("buffer " + strconv.Itoa(k) + " changed at " + strconv.Itoa(i))
				}
			}
			total += len(h) >> 20
		}
		m.SetData([]byte(strconv.Itoa(total)))
		return nil
	})
}

func main() {}
