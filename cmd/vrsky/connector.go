package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vrsky/vrsky/registry"
)

// newConnectorCmd is `vrsky connector`: the registry's client commands
// (push, list, show, pull) and the offline signing tools (keygen, sign).
func newConnectorCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "connector", Aliases: []string{"connectors"}, Short: "Publish and browse connectors in the registry"})
	opts := addClientFlags(cmd)

	var module, sigFile string
	push := &cobra.Command{
		Use:   "push DIR",
		Short: "Upload a connector: DIR's vrsky-connector.yaml and its built .wasm (and vrsky-connector.sig, if present)",
		Long: "push builds nothing: it uploads DIR/" + registry.ManifestFile + " and the module (--module, else the one .wasm file in DIR)," +
			" with DIR/" + registry.SignatureFile + " when it exists (or --signature). The registry validates it and names the rule it breaks, if any.",
		Args: cobra.ExactArgs(1),
	}
	pushOut := addOutputFlag(push)
	push.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		man, wasm, err := readConnectorDir(args[0], module)
		if err != nil {
			return err
		}
		if sigFile == "" {
			if p := filepath.Join(args[0], registry.SignatureFile); fileExists(p) {
				sigFile = p
			}
		}
		parts := map[string][]byte{"manifest": man, "module": wasm}
		if sigFile != "" {
			if parts["signature"], err = os.ReadFile(sigFile); err != nil {
				return err
			}
		}
		ct, body, err := multipartForm(parts)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.do(http.MethodPost, "/api/v1/connectors", ct, body, &raw); err != nil {
			return err
		}
		return pushOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var up struct {
				Name, Version, Kind, Visibility, Digest string
				Size                                    int64
			}
			if err := json.Unmarshal(raw, &up); err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			_, err := fmt.Fprintf(w, "pushed %s@%s: %s, %s, sha256 %s, %d bytes\n", up.Name, up.Version, up.Kind, up.Visibility, up.Digest, up.Size)
			return err
		})
	}
	push.Flags().StringVar(&module, "module", "", "the .wasm file (default: the one .wasm in DIR)")
	push.Flags().StringVar(&sigFile, "signature", "", "signature file (default: DIR/"+registry.SignatureFile+" if present)")

	var q registry.Query
	var asJSON bool
	list := &cobra.Command{
		Use: "list", Short: "List the catalogue: built-in, shipped and uploaded connectors", Args: cobra.NoArgs,
	}
	listOut := addOutputFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		v := url.Values{}
		for k, s := range map[string]string{"kind": q.Kind, "tag": q.Tag, "q": q.Text} {
			if s != "" {
				v.Set(k, s)
			}
		}
		if q.Page > 0 {
			v.Set("page", strconv.Itoa(q.Page))
		}
		if q.Limit > 0 {
			v.Set("limit", strconv.Itoa(q.Limit))
		}
		path := "/api/v1/connectors"
		if len(v) > 0 {
			path += "?" + v.Encode()
		}
		raw, err := c.getRaw(path)
		if err != nil {
			return err
		}
		if asJSON {
			*listOut = formatJSON
		}
		return listOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var page registry.Page
			if err := json.Unmarshal(raw, &page); err != nil {
				return fmt.Errorf("connectors: %w", err)
			}
			return printCatalogue(w, page)
		})
	}
	fl := list.Flags()
	fl.StringVar(&q.Kind, "kind", "", "only this kind: source, step or sink")
	fl.StringVar(&q.Tag, "tag", "", "only connectors with this tag")
	fl.StringVarP(&q.Text, "query", "q", "", "text in the name, description or tags")
	fl.IntVar(&q.Page, "page", 0, "page number (from 1)")
	fl.IntVar(&q.Limit, "limit", 0, "page size (default 50)")
	fl.BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	_ = fl.MarkDeprecated("json", "use -o json")
	_ = list.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions([]string{"source", "step", "sink"}, cobra.ShellCompDirectiveNoFileComp))

	var kind string
	show := &cobra.Command{
		Use: "show NAME[@VERSION]", Short: "Show a connector (every version) or one version, with its config fields", Args: cobra.ExactArgs(1),
		Long: "show prints a connector's versions and the fields of its config; -o yaml or json prints the manifest and config schema whole." +
			" A source and a sink may share a name (file): --kind picks one.",
		ValidArgsFunction: opts.completeConnectors(false),
	}
	show.Flags().StringVar(&kind, "kind", "", "source, step or sink: the one of that kind, when several share the name")
	_ = show.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions([]string{"source", "step", "sink"}, cobra.ShellCompDirectiveNoFileComp))
	showOut := addOutputFlag(show)
	show.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		name, version, _ := strings.Cut(args[0], "@")
		path := "/api/v1/connectors/" + url.PathEscape(name)
		switch {
		case version != "" && kind != "":
			return errors.New("--kind picks among connectors of one name; NAME@VERSION names one already")
		case version != "":
			path += "/" + url.PathEscape(version)
		case kind != "":
			path += "?kind=" + url.QueryEscape(kind)
		}
		raw, err := c.getRaw(path)
		if err != nil {
			return err
		}
		return showOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var e registry.Entry
			if err := json.Unmarshal(raw, &e); err != nil {
				return fmt.Errorf("connector: %w", err)
			}
			return printConnector(w, e)
		})
	}

	var outFile string
	pull := &cobra.Command{
		Use: "pull NAME@VERSION -f FILE", Short: "Download a version's Wasm module, checked against its digest", Args: cobra.ExactArgs(1),
		ValidArgsFunction: opts.completeConnectors(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, ok := strings.Cut(args[0], "@")
			if !ok || name == "" || version == "" {
				return fmt.Errorf("%q: want NAME@VERSION", args[0])
			}
			if outFile == "" {
				return errors.New("--file (-f) is required: the file to write the module to")
			}
			c, err := opts.client(cmd, requestTimeout)
			if err != nil {
				return err
			}
			base := "/api/v1/connectors/" + url.PathEscape(name) + "/" + url.PathEscape(version)
			var meta struct {
				Versions []struct{ Digest string } `json:"versions"`
			}
			if err := c.do(http.MethodGet, base, "", nil, &meta); err != nil {
				return err
			}
			wasm, err := c.raw(http.MethodGet, base+"/module")
			if err != nil {
				return err
			}
			sum := sha256.Sum256(wasm)
			if len(meta.Versions) == 1 && meta.Versions[0].Digest != "" && meta.Versions[0].Digest != hex.EncodeToString(sum[:]) {
				return fmt.Errorf("%s: the module's SHA-256 %x does not match the catalogue's %s", args[0], sum, meta.Versions[0].Digest)
			}
			if err := os.WriteFile(outFile, wasm, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d bytes, sha256 %x\n", outFile, len(wasm), sum)
			return nil
		},
	}
	pull.Flags().StringVarP(&outFile, "file", "f", "", "file to write the module to")
	deprecatedOutputFile(pull, &outFile)

	cmd.AddCommand(push, list, show, pull, newConnectorSignCmd(), newConnectorKeygenCmd())
	return cmd
}

// newConnectorSignCmd is `vrsky connector sign --key FILE DIR`.
func newConnectorSignCmd() *cobra.Command {
	var keyFile, module string
	cmd := &cobra.Command{
		Use:   "sign --key FILE DIR",
		Short: "Sign DIR's module and manifest with an ed25519 key into DIR/" + registry.SignatureFile,
		Long: "sign writes an ed25519 signature over the module's SHA-256 and the manifest's bytes; push sends it along." +
			" The registry checks it against its trusted keys (vrsky serve --registry-trusted-keys).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pem, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			key, err := registry.ParsePrivateKey(pem)
			if err != nil {
				return fmt.Errorf("%s: %w", keyFile, err)
			}
			man, wasm, err := readConnectorDir(args[0], module)
			if err != nil {
				return err
			}
			out := filepath.Join(args[0], registry.SignatureFile)
			if err := os.WriteFile(out, []byte(registry.Sign(key, wasm, man)), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s with %s\n", out, registry.Fingerprint(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "PEM ed25519 private key (vrsky connector keygen)")
	cmd.Flags().StringVar(&module, "module", "", "the .wasm file (default: the one .wasm in DIR)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

// newConnectorKeygenCmd is `vrsky connector keygen -o FILE`.
func newConnectorKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen -f FILE",
		Short: "Create an ed25519 key pair for signing: FILE (private, 0600) and FILE.pub (for the trusted keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--file (-f) is required: the private key file to create")
			}
			if fileExists(out) {
				return fmt.Errorf("%s exists: not overwriting a key", out)
			}
			priv, pub, err := registry.GenerateKey()
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, priv, 0o600); err != nil {
				return err
			}
			if err := os.WriteFile(out+".pub", pub, 0o644); err != nil {
				return err
			}
			keys, err := registry.ParsePublicKeys(pub)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "private key %s, public key %s.pub (%s)\n", out, out, registry.Fingerprint(keys[0]))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "file", "f", "", "private key file to create")
	deprecatedOutputFile(cmd, &out)
	return cmd
}

// deprecatedOutputFile keeps -o/--output FILE working on the commands
// where it named the file written (connector pull and keygen), hidden and
// with a warning: everywhere else -o is the output format, and these
// commands take --file (-f) now. It is to be removed in a later release.
func deprecatedOutputFile(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVarP(file, "output", "o", "", "file to write (deprecated: use --file)")
	_ = cmd.Flags().MarkDeprecated("output", "use --file (-f); -o will mean the output format, as on the other commands")
}

// readConnectorDir reads DIR's manifest and its module: module when set,
// else the only .wasm file in DIR.
func readConnectorDir(dir, module string) (manifest, wasm []byte, err error) {
	manifest, err = os.ReadFile(filepath.Join(dir, registry.ManifestFile))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	if module == "" {
		found, _ := filepath.Glob(filepath.Join(dir, "*.wasm"))
		switch len(found) {
		case 0:
			return nil, nil, fmt.Errorf("%s: no .wasm file (build it first, or name it with --module)", dir)
		case 1:
			module = found[0]
		default:
			return nil, nil, fmt.Errorf("%s: %d .wasm files; name one with --module", dir, len(found))
		}
	}
	if wasm, err = os.ReadFile(module); err != nil {
		return nil, nil, err
	}
	return manifest, wasm, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// multipartForm builds a multipart/form-data body of file parts.
func multipartForm(parts map[string][]byte) (string, []byte, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, name := range []string{"manifest", "module", "signature"} {
		b, ok := parts[name]
		if !ok {
			continue
		}
		f, err := w.CreateFormFile(name, name)
		if err != nil {
			return "", nil, err
		}
		if _, err := f.Write(b); err != nil {
			return "", nil, err
		}
	}
	if err := w.Close(); err != nil {
		return "", nil, err
	}
	return w.FormDataContentType(), buf.Bytes(), nil
}

// raw sends a request and returns the answer's body as is (a module).
func (c *client) raw(method, path string) ([]byte, error) {
	b, err := c.request(context.Background(), method, path, "", nil)
	var e *clientError
	if errors.As(err, &e) {
		// do's error, but its text is what pull has always printed: no
		// field, and no body that is not the API's error document (it
		// may be part of a module).
		e.Field, e.Body = "", ""
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// printCatalogue prints a page as a table.
func printCatalogue(w io.Writer, p registry.Page) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tKIND\tORIGIN\tVISIBILITY\tUSAGE\tDESCRIPTION")
	for _, e := range p.Connectors {
		desc := strings.Join(strings.Fields(e.Description), " ")
		if len(desc) > 60 {
			desc = desc[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Name, e.Latest, e.Kind, e.Origin, e.Visibility, e.Usage, desc)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.Total > len(p.Connectors) {
		fmt.Fprintf(w, "page %d: %d of %d connectors\n", p.Page, len(p.Connectors), p.Total)
	}
	return nil
}

// registryServeFlags are `vrsky serve`'s registry settings.
type registryServeFlags struct {
	maxModuleSize     int
	requireSignatures bool
	signedTenants     []string
	trustedKeys       string
}

func addRegistryFlags(fl *pflag.FlagSet, f *registryServeFlags) {
	fl.IntVar(&f.maxModuleSize, "registry-max-module", registry.DefaultMaxModuleSize, "largest Wasm module the registry accepts, in bytes")
	fl.BoolVar(&f.requireSignatures, "registry-require-signatures", false, "every upload must be signed by a trusted key")
	fl.StringSliceVar(&f.signedTenants, "registry-signed-tenants", nil, "tenants whose uploads must be signed (comma-separated)")
	fl.StringVar(&f.trustedKeys, "registry-trusted-keys", "", "PEM file of ed25519 public keys that signatures are checked against")
}

// printConnector is `connector show`'s table: the connector, its
// versions, and the top-level fields of its config schema.
func printConnector(w io.Writer, e registry.Entry) error {
	t := newTable(w)
	t.row("NAME", "KIND", "ORIGIN", "VERSION", "VISIBILITY")
	t.row(e.Name, e.Kind, e.Origin, orDash(e.Latest), orDash(e.Visibility))
	if err := t.flush(); err != nil {
		return err
	}
	if d := oneLine(e.Description, 300); d != "" {
		fmt.Fprintf(w, "\n%s\n", d)
	}
	if len(e.Versions) > 0 {
		fmt.Fprintln(w)
		t = newTable(w)
		t.row("VERSION", "DEPRECATED", "USAGE", "SIZE", "SIGNED-BY", "DIGEST")
		for _, v := range e.Versions {
			digest := v.Digest
			if len(digest) > 16 {
				digest = digest[:16] + "…"
			}
			size := "-"
			if v.Size > 0 {
				size = strconv.FormatInt(v.Size, 10)
			}
			t.row(v.Version, v.Deprecated, v.Usage, size, orDash(v.SignedBy), orDash(digest))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	var schema struct {
		Properties map[string]struct {
			Type        any    `json:"type"`
			Description string `json:"description"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if json.Unmarshal(e.ConfigSchema, &schema) != nil || len(schema.Properties) == 0 {
		return nil
	}
	names := make([]string, 0, len(schema.Properties))
	for n := range schema.Properties {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintln(w, "\nCONFIG (-o yaml shows the whole schema):")
	t = newTable(w)
	t.row("  FIELD", "TYPE", "REQUIRED", "DESCRIPTION")
	for _, n := range names {
		p := schema.Properties[n]
		typ := "-"
		switch v := p.Type.(type) {
		case string:
			typ = v
		case []any:
			parts := make([]string, 0, len(v))
			for _, x := range v {
				parts = append(parts, fmt.Sprint(x))
			}
			typ = strings.Join(parts, "|")
		}
		t.row("  "+n, typ, slices.Contains(schema.Required, n), orDash(oneLine(p.Description, 90)))
	}
	return t.flush()
}
