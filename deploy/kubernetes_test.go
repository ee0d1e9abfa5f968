package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const k8sDir = "deploy/kubernetes"

// manifests holds every object of deploy/kubernetes, strictly decoded.
type manifests struct {
	namespaces   map[string]*corev1.Namespace
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	pvcs         []*corev1.PersistentVolumeClaim
}

// workload is a Deployment or a StatefulSet, seen through what they share.
type workload struct {
	kind, name, namespace string
	selector              *metav1.LabelSelector
	template              *corev1.PodTemplateSpec
}

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, d := range m.deployments {
		ws = append(ws, workload{"Deployment", d.Name, d.Namespace, d.Spec.Selector, &d.Spec.Template})
	}
	for _, s := range m.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, s.Namespace, s.Spec.Selector, &s.Spec.Template})
	}
	return ws
}

// loadManifests decodes every YAML document of deploy/kubernetes into its
// k8s.io/api type; an unknown field, kind or apiVersion is an error.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	m := &manifests{namespaces: map[string]*corev1.Namespace{}}
	var resources []string
	for _, file := range files {
		name := filepath.Base(file)
		if name == "kustomization.yaml" {
			continue
		}
		resources = append(resources, name)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAML(b) {
			where := fmt.Sprintf("%s document %d", name, i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				obj = &corev1.Namespace{}
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				obj, m.deployments = d, append(m.deployments, d)
			case "apps/v1 StatefulSet":
				s := &appsv1.StatefulSet{}
				obj, m.statefulSets = s, append(m.statefulSets, s)
			case "v1 Service":
				s := &corev1.Service{}
				obj, m.services = s, append(m.services, s)
			case "policy/v1 PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				obj, m.pdbs = p, append(m.pdbs, p)
			case "v1 PersistentVolumeClaim":
				p := &corev1.PersistentVolumeClaim{}
				obj, m.pvcs = p, append(m.pvcs, p)
			default:
				t.Fatalf("%s: no test knows %s %s; add it to loadManifests", where, tm.APIVersion, tm.Kind)
			}
			if err := decodeStrict(doc, obj); err != nil {
				t.Fatalf("%s (%s): %v", where, tm.Kind, err)
			}
			if ns, ok := obj.(*corev1.Namespace); ok {
				m.namespaces[ns.Name] = ns
			}
		}
	}
	// kustomization.yaml lists every manifest.
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name    string `json:"name"`
			NewName string `json:"newName,omitempty"`
			NewTag  string `json:"newTag,omitempty"`
		} `json:"images"`
	}
	if err := decodeStrict(readFile(t, k8sDir+"/kustomization.yaml"), &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	for _, w := range m.workloads() {
		for _, c := range allContainers(w.template.Spec) {
			name, _, _ := strings.Cut(c.Image, ":")
			if strings.HasPrefix(name, "baton/") && !slices.ContainsFunc(k.Images, func(i struct {
				Name    string `json:"name"`
				NewName string `json:"newName,omitempty"`
				NewTag  string `json:"newTag,omitempty"`
			}) bool {
				return i.Name == name
			}) {
				t.Errorf("kustomization.yaml images do not list %s, so it cannot be pointed at a registry", name)
			}
		}
	}
	slices.Sort(k.Resources)
	if !slices.Equal(k.Resources, resources) {
		t.Errorf("kustomization.yaml lists %v, the directory holds %v", k.Resources, resources)
	}
	return m
}

// decodeStrict decodes a YAML document as the API server would: through
// JSON, with field names matched case-sensitively, and unknown or
// duplicate fields as errors. (sigs.k8s.io/yaml's UnmarshalStrict uses
// encoding/json, which matches names case-insensitively and so would let
// readOnlyRootFileSystem pass; the API server would drop it.)
func decodeStrict(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := k8sjson.UnmarshalStrict(j, obj, k8sjson.DisallowDuplicateFields, k8sjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// splitYAML splits a multi-document YAML file on its "---" lines.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) != "" {
			docs = append(docs, []byte(doc))
		}
	}
	return docs
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	if len(m.deployments) != 1 || len(m.statefulSets) != 1 {
		t.Fatalf("want the server Deployment and the agent StatefulSet, got %d and %d", len(m.deployments), len(m.statefulSets))
	}
	server, agent := m.deployments[0], m.statefulSets[0]
	if server.Spec.Replicas == nil || *server.Spec.Replicas < 2 {
		t.Errorf("server replicas %v, want at least 2", server.Spec.Replicas)
	}
	if agent.Spec.VolumeClaimTemplates == nil {
		t.Error("agents keep no state volume per agent (volumeClaimTemplates)")
	}

	for _, w := range m.workloads() {
		t.Run(w.kind+"/"+w.name, func(t *testing.T) {
			checkWorkload(t, m, w)
		})
	}
	// Services and PDBs select the pods of a workload in their namespace.
	for _, s := range m.services {
		w := selects(t, m, s.Namespace, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, "Service "+s.Name)
		for _, p := range s.Spec.Ports {
			if w != nil && !hasPort(w.template.Spec, p.TargetPort) {
				t.Errorf("Service %s targets port %s, which no container of %s %s has", s.Name, p.TargetPort.String(), w.kind, w.name)
			}
		}
	}
	for _, p := range m.pdbs {
		selects(t, m, p.Namespace, p.Spec.Selector, "PodDisruptionBudget "+p.Name)
	}
	for _, w := range m.workloads() {
		covered := false
		for _, p := range m.pdbs {
			sel, _ := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			covered = covered || (p.Namespace == w.namespace && sel.Matches(labels.Set(w.template.Labels)))
		}
		if !covered {
			t.Errorf("%s %s has no PodDisruptionBudget", w.kind, w.name)
		}
	}

	// The agents reach the server's Service.
	agentC := container(t, agent.Spec.Template.Spec, "agent")
	serverURL, err := url.Parse(envValue(agentC, "BATON_SERVER"))
	if err != nil || serverURL.Host == "" {
		t.Fatalf("agent BATON_SERVER %q: %v", envValue(agentC, "BATON_SERVER"), err)
	}
	host, port, _ := net.SplitHostPort(serverURL.Host)
	found := false
	for _, s := range m.services {
		for _, p := range s.Spec.Ports {
			if strings.HasPrefix(host, s.Name+"."+s.Namespace+".") && fmt.Sprint(p.Port) == port {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("agent BATON_SERVER %s names no Service port of the manifests", serverURL)
	}

	// Draining agents get the server's eviction time, and some time to
	// stop and report, before the kubelet kills them.
	eviction := 10 * time.Minute
	serverC := container(t, server.Spec.Template.Spec, "server")
	if v := flagValue(serverC, "agent-eviction"); v != "" {
		if eviction, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	grace := agent.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second < eviction+30*time.Second {
		t.Errorf("agent terminationGracePeriodSeconds %s, want at least the eviction time %s + 30s", ptrString(grace), eviction)
	}

	// Every replica gets the same keys, in its data dir, from the Secret.
	dataDir := envValue(serverC, "BATON_DATA_DIR")
	for _, key := range []string{"agent-token-signing.key", "secrets.key"} {
		if src := secretItemAt(server.Spec.Template.Spec, serverC, path.Join(dataDir, key)); src == "" {
			t.Errorf("%s is not mounted from a Secret at %s", key, path.Join(dataDir, key))
		}
	}
	// Artifacts are files: the replicas share one volume for them.
	if vm := mountOf(serverC, path.Join(dataDir, "artifacts")); vm == nil || !slices.ContainsFunc(server.Spec.Template.Spec.Volumes,
		func(v corev1.Volume) bool { return v.Name == vm.Name && v.PersistentVolumeClaim != nil }) {
		t.Errorf("%s/artifacts is not on a PersistentVolumeClaim shared by the replicas", dataDir)
	}
	for _, pvc := range m.pvcs {
		if !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany) {
			t.Errorf("PVC %s is mounted by every server replica but is not ReadWriteMany", pvc.Name)
		}
	}
}

// checkWorkload checks one workload's selector, probes, resources and
// security context.
func checkWorkload(t *testing.T, m *manifests, w workload) {
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil || sel.Empty() {
		t.Fatalf("selector %v: %v", w.selector, err)
	}
	if !sel.Matches(labels.Set(w.template.Labels)) {
		t.Errorf("selector %s does not match the pod labels %v", sel, w.template.Labels)
	}
	if _, ok := m.namespaces[w.namespace]; !ok {
		t.Errorf("namespace %q is not among the manifests", w.namespace)
	}
	spec := w.template.Spec
	for _, v := range spec.Volumes {
		if c := v.PersistentVolumeClaim; c != nil && !slices.ContainsFunc(m.pvcs, func(p *corev1.PersistentVolumeClaim) bool {
			return p.Name == c.ClaimName && p.Namespace == w.namespace
		}) {
			t.Errorf("volume %s claims %s, which is not among the manifests", v.Name, c.ClaimName)
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false: Baton needs no Kubernetes API access")
	}
	pod := spec.SecurityContext
	if pod == nil || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	for _, c := range allContainers(spec) {
		t.Run(c.Name, func(t *testing.T) {
			checkResources(t, c)
			checkEnvAndFlags(t, c)
			checkFileEnv(t, spec, c)
			if c.Name == "dind" {
				checkDinD(t, m, w, c)
				return
			}
			checkSecurity(t, pod, c)
			checkProbes(t, c)
		})
	}
}

// allContainers lists the containers and the sidecars (init containers
// that keep running); run-to-completion init containers are checked too.
func allContainers(spec corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
			t.Errorf("no %s request", r)
		}
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
		t.Error("no memory limit")
	}
}

// checkSecurity wants the restrictive security context on every container
// but the Docker-in-Docker sidecar.
func checkSecurity(t *testing.T, pod *corev1.PodSecurityContext, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("no securityContext")
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && pod != nil {
		nonRoot = pod.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Error("runAsNonRoot is not true")
	}
	uid := sc.RunAsUser
	if uid == nil && pod != nil {
		uid = pod.RunAsUser
	}
	if uid == nil || *uid != 65532 {
		t.Errorf("runAsUser %v, want 65532 (the images' user)", uid)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v, want drop ALL and no add", sc.Capabilities)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod != nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("seccompProfile is not RuntimeDefault")
	}
}

// checkProbes wants liveness on /livez and readiness on /readyz (the
// probes the server and the agent serve), on the port the binary listens
// on: --addr or BATON_ADDR for the server, --health-addr or
// BATON_HEALTH_ADDR for the agent.
func checkProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	var listen string
	switch {
	case strings.Contains(c.Image, "server"):
		listen = firstNonEmpty(flagValue(c, "addr"), envValue(c, "BATON_ADDR"))
	case strings.Contains(c.Image, "agent"):
		listen = firstNonEmpty(flagValue(c, "health-addr"), envValue(c, "BATON_HEALTH_ADDR"))
	default:
		t.Fatalf("image %s is neither the server's nor the agent's", c.Image)
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("listen address %q: %v", listen, err)
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		paths []string
	}{
		{"livenessProbe", c.LivenessProbe, []string{"/livez"}},
		{"readinessProbe", c.ReadinessProbe, []string{"/readyz"}},
		{"startupProbe", c.StartupProbe, []string{"/livez", "/readyz"}},
	} {
		if p.probe == nil {
			if p.what != "startupProbe" {
				t.Errorf("no %s", p.what)
			}
			continue
		}
		get := p.probe.HTTPGet
		if get == nil {
			t.Errorf("%s is not an HTTP GET", p.what)
			continue
		}
		if !slices.Contains(p.paths, get.Path) {
			t.Errorf("%s path %q, want one of %v", p.what, get.Path, p.paths)
		}
		if got := containerPort(c, get.Port); fmt.Sprint(got) != port {
			t.Errorf("%s port %s is container port %d; the binary listens on %s", p.what, get.Port.String(), got, listen)
		}
	}
}

// checkDinD accepts the one privileged container, the Docker-in-Docker
// sidecar, only as a native sidecar in a namespace that allows privileged
// pods, sharing the work dir (at the same path) and the socket directory
// with the agent.
func checkDinD(t *testing.T, m *manifests, w workload, c corev1.Container) {
	t.Helper()
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("dind is not a native sidecar (an init container with restartPolicy Always): it would stop with the agent, not after its drain")
	}
	if ns := m.namespaces[w.namespace]; ns == nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("dind is privileged but namespace %s does not enforce the privileged Pod Security Standard", w.namespace)
	}
	agent := container(t, w.template.Spec, "agent")
	work := envValue(agent, "BATON_WORK_DIR")
	sock := strings.TrimPrefix(envValue(agent, "DOCKER_HOST"), "unix://")
	for _, p := range []struct{ what, path string }{{"BATON_WORK_DIR", work}, {"DOCKER_HOST", sock}} {
		a, d := mountOf(agent, p.path), mountOf(c, p.path)
		if a == nil || d == nil || a.Name != d.Name || a.MountPath != d.MountPath {
			t.Errorf("%s %s is not on one volume mounted at the same path in agent and dind (agent %+v, dind %+v)", p.what, p.path, a, d)
		}
	}
	if !slices.Contains(c.Args, "--host=unix://"+sock) || slices.ContainsFunc(c.Args, func(a string) bool { return strings.Contains(a, "tcp://") }) {
		t.Errorf("dind args %q: want only the Unix socket %s, no TCP", c.Args, sock)
	}
	checkResources(t, c)
}

// checkEnvAndFlags refuses BATON_* variables and flags that the binary
// does not read: a typo would be silently ignored.
func checkEnvAndFlags(t *testing.T, c corev1.Container) {
	t.Helper()
	var bin string
	switch {
	case strings.Contains(c.Image, "baton/server"):
		bin = "server"
	case strings.Contains(c.Image, "baton/agent"):
		bin = "agent"
	default:
		return
	}
	envs, flags := knownConfig(t, bin)
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "BATON_") && !slices.Contains(envs, e.Name) {
			t.Errorf("baton-%s reads no %s", bin, e.Name)
		}
	}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if !slices.Contains(flags, name) {
				t.Errorf("baton-%s has no flag --%s", bin, name)
			}
		}
	}
}

// checkFileEnv wants each *_FILE variable to name a file mounted from a
// Secret.
func checkFileEnv(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	for _, e := range c.Env {
		if strings.HasSuffix(e.Name, "_FILE") && secretItemAt(spec, c, e.Value) == "" {
			t.Errorf("%s=%s is not a file mounted from a Secret", e.Name, e.Value)
		}
	}
}

// knownConfig lists the BATON_* variables and the flags that the binary's
// config.go reads.
func knownConfig(t *testing.T, bin string) (envs, flags []string) {
	t.Helper()
	src := readFile(t, fmt.Sprintf("%s/cmd/baton-%s/config.go", bin, bin))
	for _, m := range regexp.MustCompile(`"(BATON_[A-Z_]+)"`).FindAllSubmatch(src, -1) {
		envs = append(envs, string(m[1]))
	}
	for _, m := range regexp.MustCompile(`fs\.[A-Za-z0-9]+\((?:&[^,]+, )?"([a-z][a-z-]*)"`).FindAllSubmatch(src, -1) {
		flags = append(flags, string(m[1]))
	}
	if len(envs) == 0 || len(flags) == 0 {
		t.Fatalf("found no variables or flags in baton-%s's config.go", bin)
	}
	return envs, flags
}

// secretItemAt returns "secret/key" when file is a Secret's key mounted
// into c, through a volume mount of the item or of its directory.
func secretItemAt(spec corev1.PodSpec, c corev1.Container, file string) string {
	for _, vm := range c.VolumeMounts {
		var rel string
		switch {
		case vm.MountPath == file && vm.SubPath != "":
			rel = vm.SubPath
		case vm.SubPath == "" && strings.HasPrefix(file, vm.MountPath+"/"):
			rel = strings.TrimPrefix(file, vm.MountPath+"/")
		default:
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return v.Secret.SecretName + "/" + rel
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return v.Secret.SecretName + "/" + it.Key
				}
			}
		}
	}
	return ""
}

// selects finds the workload in namespace whose pods sel selects.
func selects(t *testing.T, m *manifests, namespace string, sel *metav1.LabelSelector, what string) *workload {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		t.Errorf("%s: selector %v: %v", what, sel, err)
		return nil
	}
	for _, w := range m.workloads() {
		if w.namespace == namespace && s.Matches(labels.Set(w.template.Labels)) {
			return &w
		}
	}
	t.Errorf("%s selects no pods of the manifests (%s in %s)", what, s, namespace)
	return nil
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range allContainers(spec) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

func hasPort(spec corev1.PodSpec, port intstr.IntOrString) bool {
	for _, c := range allContainers(spec) {
		if containerPort(c, port) != 0 {
			return true
		}
	}
	return false
}

// containerPort resolves a named or numbered port of c; 0 if c has none.
func containerPort(c corev1.Container, port intstr.IntOrString) int32 {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort
		}
	}
	return 0
}

// mountOf is the volume mount of c that holds path.
func mountOf(c corev1.Container, p string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if (p == vm.MountPath || strings.HasPrefix(p, vm.MountPath+"/")) && (best == nil || len(vm.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// flagValue is the value of --name=value or --name value in c's args.
func flagValue(c corev1.Container, name string) string {
	args := append(slices.Clone(c.Command), c.Args...)
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// TestKubernetesStrictDecodingCatchesTypos makes sure the strict decoding
// above would fail on a misspelt field, so the check means something.
func TestKubernetesStrictDecodingCatchesTypos(t *testing.T) {
	t.Parallel()
	b := readFile(t, k8sDir+"/server.yaml")
	doc := splitYAML(b)[0]
	if err := decodeStrict(doc, &appsv1.Deployment{}); err != nil {
		t.Fatal(err)
	}
	for _, typo := range [][2]string{
		{"readOnlyRootFilesystem:", "readOnlyRootFileSystem:"}, // only the case differs
		{"readinessProbe:", "readynessProbe:"},
		{"replicas: 2", "replicas: 2\n  replicas: 3"}, // a duplicate
	} {
		bad := bytes.Replace(doc, []byte(typo[0]), []byte(typo[1]), 1)
		if bytes.Equal(bad, doc) {
			t.Fatalf("server.yaml has no %q", typo[0])
		}
		if err := decodeStrict(bad, &appsv1.Deployment{}); err == nil {
			t.Errorf("%q decoded without an error", typo[1])
		}
	}
}
