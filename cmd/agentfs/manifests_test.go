package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/yaml"

	"github.com/agentfs/agentfs/internal/csidriver"
)

const manifestDir = "../../docs/deploy/kubernetes"

// kinds maps apiVersion/kind to a new object of its Kubernetes API type.
var kinds = map[string]func() any{
	"v1/Namespace":                                    func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                               func() any { return &corev1.ServiceAccount{} },
	"v1/PersistentVolumeClaim":                        func() any { return &corev1.PersistentVolumeClaim{} },
	"v1/Pod":                                          func() any { return &corev1.Pod{} },
	"apps/v1/DaemonSet":                               func() any { return &appsv1.DaemonSet{} },
	"apps/v1/Deployment":                              func() any { return &appsv1.Deployment{} },
	"storage.k8s.io/v1/CSIDriver":                     func() any { return &storagev1.CSIDriver{} },
	"storage.k8s.io/v1/StorageClass":                  func() any { return &storagev1.StorageClass{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
	"rbac.authorization.k8s.io/v1/Role":               func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":        func() any { return &rbacv1.RoleBinding{} },
	"snapshot.storage.k8s.io/v1/VolumeSnapshotClass":  func() any { return &snapv1.VolumeSnapshotClass{} },
	"snapshot.storage.k8s.io/v1/VolumeSnapshot":       func() any { return &snapv1.VolumeSnapshot{} },
}

// decodeManifests decodes every document of every YAML file in dir into its Kubernetes
// API type, rejecting unknown fields.
func decodeManifests(t *testing.T, dir string) []any {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	var objs []any
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue // not a Kubernetes object; TestKustomizationListsManifests checks it
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(b), "\n---\n") {
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			if head.Kind == "" {
				continue // only comments
			}
			newObj, ok := kinds[head.APIVersion+"/"+head.Kind]
			if !ok {
				t.Fatalf("%s document %d: %s %s is not a kind this test knows; add it to kinds", f, i+1, head.APIVersion, head.Kind)
			}
			obj := newObj()
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i+1, head.Kind, err)
			}
			objs = append(objs, obj)
		}
	}
	return objs
}

// TestKubernetesManifests decodes the manifests into the Kubernetes API types and checks
// what the driver relies on: the driver name everywhere, Bidirectional propagation on the
// daemon's kubelet mount, the sidecars, the service accounts and RBAC, volume names, and
// that every agentfs command line in them is one the CLI accepts.
func TestKubernetesManifests(t *testing.T) {
	objs := decodeManifests(t, manifestDir)
	accounts, bound := map[string]bool{}, map[string]bool{}
	var pods []struct {
		what string
		spec corev1.PodSpec
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			accounts[o.Namespace+"/"+o.Name] = true
		case *rbacv1.ClusterRoleBinding:
			for _, s := range o.Subjects {
				bound[s.Namespace+"/"+s.Name] = true
			}
		case *storagev1.CSIDriver:
			if o.Name != csidriver.Name {
				t.Errorf("CSIDriver %q, want %q", o.Name, csidriver.Name)
			}
		case *storagev1.StorageClass:
			if o.Provisioner != csidriver.Name {
				t.Errorf("StorageClass %s: provisioner %q, want %q", o.Name, o.Provisioner, csidriver.Name)
			}
		case *snapv1.VolumeSnapshotClass:
			if o.Driver != csidriver.Name {
				t.Errorf("VolumeSnapshotClass %s: driver %q, want %q", o.Name, o.Driver, csidriver.Name)
			}
		case *appsv1.DaemonSet:
			pods = append(pods, struct {
				what string
				spec corev1.PodSpec
			}{"DaemonSet " + o.Name, o.Spec.Template.Spec})
			checkNodePlugin(t, o)
		case *appsv1.Deployment:
			pods = append(pods, struct {
				what string
				spec corev1.PodSpec
			}{"Deployment " + o.Name, o.Spec.Template.Spec})
			checkSidecars(t, o.Name, o.Spec.Template.Spec, "csi-provisioner", "csi-snapshotter")
			if !bound[o.Namespace+"/"+o.Spec.Template.Spec.ServiceAccountName] {
				defer func(ns, sa string) { // bindings may come later in the file order
					if !bound[ns+"/"+sa] {
						t.Errorf("Deployment %s: service account %s has no ClusterRoleBinding", o.Name, sa)
					}
				}(o.Namespace, o.Spec.Template.Spec.ServiceAccountName)
			}
		}
	}
	for _, p := range pods {
		if sa := p.spec.ServiceAccountName; sa != "" && !accounts["agentfs/"+sa] {
			t.Errorf("%s: service account %s is not in the manifests", p.what, sa)
		}
		checkPodSpec(t, p.what, p.spec)
	}
}

func checkNodePlugin(t *testing.T, ds *appsv1.DaemonSet) {
	checkSidecars(t, ds.Name, ds.Spec.Template.Spec, "node-driver-registrar")
	bidi := false
	for _, c := range ds.Spec.Template.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional {
				bidi = true
				if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
					t.Errorf("DaemonSet %s: container %s has Bidirectional propagation but is not privileged (Kubernetes refuses that)", ds.Name, c.Name)
				}
			}
		}
		for _, a := range c.Args {
			if strings.HasPrefix(a, "--kubelet-registration-path=") && !strings.Contains(a, "/"+csidriver.Name+"/") {
				t.Errorf("DaemonSet %s: %s does not name the driver's plugin directory", ds.Name, a)
			}
		}
	}
	if !bidi {
		t.Errorf("DaemonSet %s: no volume mount with Bidirectional propagation: mounts would not reach the kubelet", ds.Name)
	}
}

func checkSidecars(t *testing.T, name string, spec corev1.PodSpec, want ...string) {
	have := map[string]bool{}
	for _, c := range spec.Containers {
		have[c.Name] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("%s: no %s container", name, w)
		}
	}
}

// checkPodSpec checks volume references, $(VAR) references, and the agentfs command lines.
func checkPodSpec(t *testing.T, what string, spec corev1.PodSpec) {
	vols := map[string]bool{}
	for _, v := range spec.Volumes {
		vols[v.Name] = true
	}
	for _, c := range spec.Containers {
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				t.Errorf("%s container %s: volume %q is not defined", what, c.Name, m.Name)
			}
		}
		for _, a := range c.Args {
			if i := strings.Index(a, "$("); i >= 0 {
				if v := strings.TrimSuffix(a[i+2:], ")"); !env[v] {
					t.Errorf("%s container %s: $(%s) is not in its env", what, c.Name, v)
				}
			}
		}
		if strings.HasPrefix(c.Image, "agentfs:") {
			if err := checkCommandLine(c.Args); err != nil {
				t.Errorf("%s container %s: agentfs %s: %v", what, c.Name, strings.Join(c.Args, " "), err)
			}
		}
	}
}

// checkCommandLine parses args with the real CLI, without running the command.
func checkCommandLine(args []string) error {
	root := newRootCmd()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if cmd == root {
		return fmt.Errorf("names no command")
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	if cmd.Name() == "serve" && !cmd.Flags().Changed("init") {
		return fmt.Errorf("serve without --init exits on a fresh node (no repository), so the pod would crash-loop")
	}
	return cmd.ValidateArgs(cmd.Flags().Args())
}

// TestKustomizationListsManifests checks that kubectl apply -k installs every manifest but
// the example.
func TestKustomizationListsManifests(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(manifestDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Resources  []string
	}
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, r := range k.Resources {
		listed[r] = true
	}
	files, _ := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	for _, f := range files {
		name := filepath.Base(f)
		if name == "kustomization.yaml" || name == "example.yaml" {
			continue
		}
		if !listed[name] {
			t.Errorf("kustomization.yaml does not list %s", name)
		}
		delete(listed, name)
	}
	for r := range listed {
		t.Errorf("kustomization.yaml lists %s, which is not in %s", r, manifestDir)
	}
}
