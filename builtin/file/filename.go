package file

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/google/uuid"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Filename templates run on every delivery, on the server's cores, with
// text a tenant wrote: they must be bounded in time and in output, and see
// nothing of the server. So they are checked when the config is parsed
// (at create time, naming the field) against a grammar that holds only
// what a file name needs, and run into a writer that holds at most
// MaxFilenameBytes:
//
//   - text, comments, and actions {{…}} without variables;
//   - in an action, a method of the data: .ID, .Time, .Header "X",
//     .Field "a.b", and .Time.Format "2006-01-02" (or .Time.Unix,
//     .UnixMilli, .Year, .Month, .Day, .Hour, .Minute, .Second, .YearDay,
//     .Weekday), the arguments quoted strings; or a quoted string; or one
//     of the functions slice and urlquery, whose arguments are such
//     methods without arguments, strings, numbers or (parenthesised)
//     actions; and pipes (|) into those functions.
//
// Nothing else: no range, with or if, no template, block or define, no
// printf (its widths pad without bound), no bare "." or "$" (they would
// print the data itself). A checked template has no loop and no call that
// repeats or pads, so a run costs at most one decoding of the inline
// payload plus work in proportion to the template's length, and the
// writer stops it at the first byte past the bound.
const (
	// MaxFilenameTemplate is the longest filename template, in bytes.
	MaxFilenameTemplate = 1024
	// MaxFilenameBytes is the longest name a template may produce.
	MaxFilenameBytes = 1024
)

// filenameFuncs are the template functions a filename may call.
var filenameFuncs = map[string]bool{
	"slice":    true, // {{slice .ID 0 2}}: a prefix, e.g. to shard folders
	"urlquery": true, // {{urlquery (.Header "X")}}: a value as one path segment
}

// filenameMethods are the method chains of the template data a filename
// may call, with the number of (quoted string) arguments each takes.
var filenameMethods = map[string]int{
	"ID": 0, "Time": 0, "Header": 1, "Field": 1,
	"Time.Format": 1, "Time.Unix": 0, "Time.UnixMilli": 0,
	"Time.Year": 0, "Time.Month": 0, "Time.Day": 0, "Time.Hour": 0,
	"Time.Minute": 0, "Time.Second": 0, "Time.YearDay": 0, "Time.Weekday": 0,
}

// errFilenameTooLong is what a run past MaxFilenameBytes fails with.
var errFilenameTooLong = fmt.Errorf("produced more than %d bytes", MaxFilenameBytes)

// parseFilename parses and checks a filename template; its errors are
// *connector.SpecError on field "filename".
func parseFilename(text string) (*template.Template, error) {
	bad := func(format string, a ...any) error {
		return &connector.SpecError{Field: "filename", Reason: fmt.Sprintf(format, a...)}
	}
	if len(text) > MaxFilenameTemplate {
		return nil, bad("is %d bytes long, over the limit of %d", len(text), MaxFilenameTemplate)
	}
	tpl, err := template.New("filename").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, bad("not a valid template: %v", err)
	}
	if ts := tpl.Templates(); len(ts) > 1 {
		return nil, bad("must not define templates ({{define}}, {{block}})")
	}
	if tpl.Tree == nil || tpl.Tree.Root == nil {
		return nil, bad("must not be empty")
	}
	if err := checkFilenameList(tpl.Tree.Root); err != nil {
		return nil, bad("%v", err)
	}
	return tpl, nil
}

// allowedHint ends every refusal: what may be used instead.
const allowedHint = `a filename may use text, {{.ID}}, {{.Time}}, {{.Time.Format "2006-01-02"}}, {{.Header "X"}}, {{.Field "a.b"}} and the functions slice and urlquery`

// quote shows a node of the template in an error, shortened.
func quote(n parse.Node) string {
	s := n.String()
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func checkFilenameList(l *parse.ListNode) error {
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.TextNode, *parse.CommentNode:
		case *parse.ActionNode:
			if err := checkFilenamePipe(n.Pipe); err != nil {
				return err
			}
		case *parse.RangeNode, *parse.WithNode, *parse.IfNode:
			return fmt.Errorf("%s: range, with and if are not allowed; %s", quote(n), allowedHint)
		case *parse.TemplateNode:
			return fmt.Errorf("%s: template and block are not allowed; %s", quote(n), allowedHint)
		default:
			return fmt.Errorf("%s is not allowed; %s", quote(n), allowedHint)
		}
	}
	return nil
}

func checkFilenamePipe(p *parse.PipeNode) error {
	if len(p.Decl) > 0 || p.IsAssign {
		return fmt.Errorf("%s: variables are not allowed; %s", quote(p), allowedHint)
	}
	for i, c := range p.Cmds {
		if err := checkFilenameCommand(c, i > 0); err != nil {
			return err
		}
	}
	return nil
}

// checkFilenameCommand checks one command of a pipeline; piped is true
// when the previous command's value is passed to it.
func checkFilenameCommand(c *parse.CommandNode, piped bool) error {
	switch first := c.Args[0].(type) {
	case *parse.FieldNode:
		name := strings.Join(first.Ident, ".")
		n, ok := filenameMethods[name]
		switch {
		case !ok:
			return fmt.Errorf("%s: .%s is not part of the data; %s", quote(c), name, allowedHint)
		case piped:
			return fmt.Errorf("%s: a value cannot be piped into .%s", quote(c), name)
		case len(c.Args)-1 != n:
			return fmt.Errorf("%s: .%s takes %d argument(s), not %d", quote(c), name, n, len(c.Args)-1)
		}
		for _, a := range c.Args[1:] {
			if _, ok := a.(*parse.StringNode); !ok {
				return fmt.Errorf("%s: the argument of .%s must be a quoted string", quote(c), name)
			}
		}
	case *parse.IdentifierNode:
		if !filenameFuncs[first.Ident] {
			return fmt.Errorf("%s: the function %s is not allowed; %s", quote(c), first.Ident, allowedHint)
		}
		for _, a := range c.Args[1:] {
			if err := checkFilenameOperand(a); err != nil {
				return err
			}
		}
	case *parse.StringNode:
		if piped || len(c.Args) > 1 {
			return fmt.Errorf("%s is not allowed; %s", quote(c), allowedHint)
		}
	default: // ., $, (…).X chains, numbers, booleans, nil
		return fmt.Errorf("%s is not allowed; %s", quote(c), allowedHint)
	}
	return nil
}

// checkFilenameOperand checks an argument of a function.
func checkFilenameOperand(a parse.Node) error {
	switch a := a.(type) {
	case *parse.StringNode, *parse.NumberNode:
		return nil
	case *parse.FieldNode:
		name := strings.Join(a.Ident, ".")
		n, ok := filenameMethods[name]
		switch {
		case !ok:
			return fmt.Errorf("%s: .%s is not part of the data; %s", quote(a), name, allowedHint)
		case n > 0:
			return fmt.Errorf("%s: as an argument, .%s needs parentheses: (.%s \"…\")", quote(a), name, name)
		}
		return nil
	case *parse.PipeNode:
		return checkFilenamePipe(a)
	default:
		return fmt.Errorf("%s is not allowed as an argument; %s", quote(a), allowedHint)
	}
}

// boundedName is the writer a filename template runs into: it holds at
// most MaxFilenameBytes and fails the run at the first byte past them.
type boundedName struct{ b []byte }

func (w *boundedName) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > MaxFilenameBytes {
		return 0, errFilenameTooLong
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// renderFilename runs a checked template for msg.
func renderFilename(tpl *template.Template, msg *connector.Message) (string, error) {
	var w boundedName
	if err := tpl.Execute(&w, newNameData(msg)); err != nil {
		return "", err
	}
	return string(w.b), nil
}

// nameData is all a filename template sees: the documented fields
// (sink.schema.json) — the message's id, time, headers and inline JSON
// payload — and nothing else of the message, the sink or the server.
type nameData struct {
	id      string
	header  connector.Header
	payload []byte // the inline payload; nil when claim-checked
	claimed bool
	fields  map[string]any // payload, decoded on first use
}

func newNameData(msg *connector.Message) *nameData {
	d := &nameData{id: msg.ID, header: msg.Header, claimed: msg.Claimed()}
	if !d.claimed {
		d.payload = msg.Data
	}
	return d
}

// String keeps the data from printing itself, should a template ever be
// able to print it.
func (d *nameData) String() string { return "{.ID .Time .Header .Field}" }

// ID is the message id.
func (d *nameData) ID() string { return d.id }

// Time is the message's time: from its id when that is a UUIDv7, else now.
func (d *nameData) Time() Time {
	if u, err := uuid.Parse(d.id); err == nil && u.Version() == 7 {
		sec, nsec := u.Time().UnixTime()
		return Time{time.Unix(sec, nsec).UTC()}
	}
	return Time{time.Now().UTC()}
}

// Header returns the first value of a message header, or "".
func (d *nameData) Header(key string) string { return d.header.Get(key) }

// Field returns a field of the JSON payload: strings as they are, other
// values as JSON. Dots in path reach into nested objects.
func (d *nameData) Field(path string) (string, error) {
	if d.fields == nil {
		if d.claimed {
			return "", fmt.Errorf("field %q: the payload is claim-checked (over 256 KiB); use .ID or .Header in the filename", path)
		}
		dec := json.NewDecoder(bytes.NewReader(d.payload))
		dec.UseNumber()
		if err := dec.Decode(&d.fields); err != nil {
			return "", fmt.Errorf("field %q: the payload is not a JSON object: %w", path, err)
		}
	}
	var v any = d.fields
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("field %q: %q is not inside an object", path, k)
		}
		if v, ok = obj[k]; !ok {
			return "", fmt.Errorf("field %q: no such field in the payload", path)
		}
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	default:
		b, _ := json.Marshal(x)
		return string(b), nil
	}
}

// Time is a time.Time that prints in a form fit for file names,
// 20060102T150405.000Z. A filename may call Format and the methods
// listed in filenameMethods.
type Time struct{ time.Time }

func (t Time) String() string { return t.UTC().Format("20060102T150405.000Z") }

// pathless drops the path from err when it is a *fs.PathError of an
// operation on the sink's directory itself: that path is the server's
// (the tenant's dir under the files root), not one the tenant wrote. The
// reason stays, and errors.Is still sees it.
func pathless(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
