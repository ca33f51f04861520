package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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
	cmd := &cobra.Command{Use: "connector", Aliases: []string{"connectors"}, Short: "Publish and browse connectors in the registry"}
	newClient := clientFlags(cmd)

	var module, sigFile string
	push := &cobra.Command{
		Use:   "push DIR",
		Short: "Upload a connector: DIR's vrsky-connector.yaml and its built .wasm (and vrsky-connector.sig, if present)",
		Long: "push builds nothing: it uploads DIR/" + registry.ManifestFile + " and the module (--module, else the one .wasm file in DIR)," +
			" with DIR/" + registry.SignatureFile + " when it exists (or --signature). The registry validates it and names the rule it breaks, if any.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			var out any
			if err := newClient().do(http.MethodPost, "/api/v1/connectors", ct, body, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	push.Flags().StringVar(&module, "module", "", "the .wasm file (default: the one .wasm in DIR)")
	push.Flags().StringVar(&sigFile, "signature", "", "signature file (default: DIR/"+registry.SignatureFile+" if present)")

	var q registry.Query
	var asJSON bool
	list := &cobra.Command{
		Use: "list", Short: "List the catalogue: built-in, shipped and uploaded connectors", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			var page registry.Page
			if err := newClient().do(http.MethodGet, path, "", nil, &page); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), page)
			}
			return printCatalogue(cmd.OutOrStdout(), page)
		},
	}
	fl := list.Flags()
	fl.StringVar(&q.Kind, "kind", "", "only this kind: source, step or sink")
	fl.StringVar(&q.Tag, "tag", "", "only connectors with this tag")
	fl.StringVarP(&q.Text, "query", "q", "", "text in the name, description or tags")
	fl.IntVar(&q.Page, "page", 0, "page number (from 1)")
	fl.IntVar(&q.Limit, "limit", 0, "page size (default 50)")
	fl.BoolVar(&asJSON, "json", false, "print the API's JSON answer")

	show := &cobra.Command{
		Use: "show NAME[@VERSION]", Short: "Show a connector (every version) or one version, with manifest and config schema", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, _ := strings.Cut(args[0], "@")
			path := "/api/v1/connectors/" + url.PathEscape(name)
			if version != "" {
				path += "/" + url.PathEscape(version)
			}
			var out any
			if err := newClient().do(http.MethodGet, path, "", nil, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}

	var outFile string
	pull := &cobra.Command{
		Use: "pull NAME@VERSION -o FILE", Short: "Download a version's Wasm module, checked against its digest", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, ok := strings.Cut(args[0], "@")
			if !ok || name == "" || version == "" {
				return fmt.Errorf("%q: want NAME@VERSION", args[0])
			}
			c := newClient()
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
	pull.Flags().StringVarP(&outFile, "output", "o", "", "file to write the module to")
	_ = pull.MarkFlagRequired("output")

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
		Use:   "keygen -o FILE",
		Short: "Create an ed25519 key pair for signing: FILE (private, 0600) and FILE.pub (for the trusted keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	cmd.Flags().StringVarP(&out, "output", "o", "", "private key file to create")
	_ = cmd.MarkFlagRequired("output")
	return cmd
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
	u := c.base + path
	if c.tenant != "" {
		u += "?tenant=" + url.QueryEscape(c.tenant)
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return nil, err
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		// do's error, but its text is what pull has always printed: no
		// field, and no body that is not the API's error document (it
		// may be part of a module).
		e := newClientError(resp, b)
		e.Field, e.Body = "", ""
		return nil, e
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
