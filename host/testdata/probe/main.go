// Command probe is a test guest: what it does depends on the payload's
// prefix ("verb:arg"). It exercises every part of the ABI.
package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/vrsky/vrsky/abi/guest"
)

var hold [][]byte

func init() {
	guest.Process(handle)
}

func handle(m *guest.Message) error {
	verb, arg, _ := strings.Cut(string(m.Data()), ":")
	switch verb {
	case "upper":
		m.SetData(bytes.ToUpper([]byte(arg)))
	case "drop":
		m.Drop()
	case "fail":
		return errors.New("bad record: " + arg)
	case "retry":
		return guest.Retryable(errors.New("later"))
	case "multi":
		n, _ := strconv.Atoi(arg)
		for i := 0; i < n; i++ {
			if err := m.Emit([]byte(strconv.Itoa(i))); err != nil {
				return err
			}
		}
	case "header":
		v, _ := m.Header(arg)
		m.SetHeader("X-Seen", "yes")
		m.SetData([]byte(v))
	case "headers":
		var s []string
		for k, v := range m.Headers() {
			s = append(s, k+"="+v)
		}
		sort.Strings(s)
		m.SetData([]byte(strings.Join(s, ",")))
	case "config":
		m.SetData(guest.Config())
	case "log":
		guest.Info("hello from probe")
		os.Stdout.WriteString("stdout line\n")
	case "loop":
		for {
		}
	case "oom":
		for {
			hold = append(hold, make([]byte, 1<<20))
		}
	case "panic":
		panic("boom")
	case "exit":
		os.Exit(3)
	case "big":
		n, _ := strconv.Atoi(arg)
		return m.Emit(make([]byte, n))
	case "publish":
		return guest.Publish(arg, []byte("hi"))
	case "request":
		r, err := guest.Request(arg, []byte("ping"), 0)
		if err != nil {
			return err
		}
		m.SetData(r)
	case "kv":
		if err := guest.KVPut(arg, []byte("v-"+arg)); err != nil {
			return err
		}
		v, err := guest.KVGet(arg)
		if err != nil {
			return err
		}
		if err := guest.KVDelete(arg); err != nil {
			return err
		}
		if _, err := guest.KVGet(arg); !errors.Is(err, guest.ErrNotFound) {
			return errors.New("kv: deleted key still there")
		}
		m.SetData(v)
	case "http":
		r, err := guest.HTTP("GET", arg, map[string]string{"X-Probe": "1"}, nil)
		if err != nil {
			return err
		}
		m.SetData([]byte(strconv.Itoa(r.Status) + " " + string(r.Body)))
	case "objput":
		key, body, _ := strings.Cut(arg, "=")
		o, err := guest.CreateObject(key)
		if err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			if _, err := o.Write([]byte(body)); err != nil {
				return err
			}
		}
		return o.Close()
	case "objget":
		o, err := guest.OpenObject(arg)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(o)
		o.Close()
		if err != nil {
			return err
		}
		m.SetData(b)
	}
	return nil
}

func main() {}
