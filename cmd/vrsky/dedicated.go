package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vrsky/vrsky/platform/provision"
	"github.com/vrsky/vrsky/platform/provision/k8s"
	"github.com/vrsky/vrsky/platform/tenancy"
)

// setProvisioner gives tenants the provisioner --dedicated-nats names and
// returns what stops it (local instances stop with vrsky serve and come
// back with it; their data stays).
func setProvisioner(f serveFlags, tenants *tenancy.Manager, log *slog.Logger) (func(), error) {
	switch f.dedicated {
	case "off":
		return func() {}, nil
	case "local":
		l, err := provision.NewLocal(filepath.Join(f.data, "tenant-nats"), log.With("component", "tenant-nats"))
		if err != nil {
			return nil, fmt.Errorf("--dedicated-nats local: %w", err)
		}
		tenants.SetProvisioner(tenancy.LocalProvisioner(l), f.natsSync == "always")
		return func() {
			if err := l.Close(); err != nil {
				log.Warn("stop the tenants' NATS instances", "err", err)
			}
		}, nil
	case "kubernetes":
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--dedicated-nats kubernetes: %w", err)
		}
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("--dedicated-nats kubernetes: %w", err)
		}
		p := k8s.New(cs, k8s.Config{
			Namespace:     cmp.Or(f.dedicatedNS, os.Getenv("POD_NAMESPACE")),
			VRSkySelector: map[string]string{"app.kubernetes.io/name": "vrsky"},
		})
		tenants.SetProvisioner(p, f.natsSync == "always")
		return func() {}, nil
	}
	return nil, fmt.Errorf("--dedicated-nats %q: want local, kubernetes or off", f.dedicated)
}
