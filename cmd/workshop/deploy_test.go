package main

// The deployment files are configuration of this binary written in other
// languages (YAML, nginx, Dockerfile). Nothing here can run them (no Docker
// engine, no cluster), so this test reads them and checks that they say
// what the binary understands: every WORKSHOP_* variable they set is one it
// reads, with a value it parses; the ports and probe paths are the ones it
// serves; the images are the Dockerfile's; Redis keeps an fsynced AOF.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/leveling/workshop/hub"
	"gopkg.in/yaml.v3"
)

// repoRoot is the repository's top level, seen from this package.
const repoRoot = "../.."

// The facts the deployment files must agree on.
const (
	dockerfilePath = "deploy/Dockerfile"
	workshopImage  = "ghcr.io/leveling/workshop" // what deploy/Dockerfile is built as
	serverPort     = 8080
	livePath       = "/healthz"
	readyPath      = "/readyz"
)

func TestDeployDockerfile(t *testing.T) {
	lines := dockerfileLines(t)
	var from []string
	env := map[string]string{}
	var expose, user, healthcheck, entrypoint, build string
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			from = append(from, rest)
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "EXPOSE":
			expose = rest
		case "USER":
			user = rest
		case "HEALTHCHECK":
			healthcheck = rest
		case "ENTRYPOINT":
			entrypoint = rest
		case "RUN":
			if strings.Contains(rest, "go build") {
				build = rest
			}
		}
	}
	if len(from) < 2 || !strings.HasPrefix(from[0], "golang:1.26 ") {
		t.Errorf("FROM: want a golang:1.26 builder stage and a runtime stage, got %q", from)
	}
	if last := from[len(from)-1]; !strings.Contains(last, "distroless/static") || !strings.HasSuffix(last, ":nonroot") {
		t.Errorf("runtime stage %q: want distroless/static with its nonroot tag", last)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/workshop"} {
		if !strings.Contains(build, want) {
			t.Errorf("go build step %q: missing %s", build, want)
		}
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q: want a non-root user", user)
	}
	if expose != strconv.Itoa(serverPort) {
		t.Errorf("EXPOSE %q, want %d", expose, serverPort)
	}
	if entrypoint != `["/workshop"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/workshop\"] (compose's healthcheck runs /workshop)", entrypoint)
	}
	if !strings.Contains(healthcheck, `"/workshop", "healthcheck"`) {
		t.Errorf("HEALTHCHECK %q: want the binary's healthcheck mode (no shell or curl on distroless)", healthcheck)
	}
	checkEnv(t, "Dockerfile ENV", env)
	if _, err := os.Stat(filepath.Join(repoRoot, dockerfilePath+".dockerignore")); err != nil {
		t.Errorf("no build context filter next to the Dockerfile: %v", err)
	}
}

func TestDeployCompose(t *testing.T) {
	var cf composeFile
	readYAML(t, "docker-compose.yml", &cf)
	workshops := map[string]composeService{}
	for name, s := range cf.Services {
		if s.Build != nil || imageRepo(s.Image) == workshopImage {
			workshops[name] = s
		}
	}
	if len(workshops) < 2 {
		t.Fatalf("compose: want two or more workshop services, got %d", len(workshops))
	}
	redis, ok := cf.Services["redis"]
	if !ok {
		t.Fatal("compose: no redis service")
	}
	if cmd := strings.Join(redis.Command, " "); !strings.Contains(cmd, "--appendonly yes") || !strings.Contains(cmd, "--appendfsync always") {
		t.Errorf("compose redis command %q: want --appendonly yes --appendfsync always", cmd)
	}
	if len(redis.Healthcheck.Test) == 0 {
		t.Error("compose redis: no healthcheck (the instances wait for service_healthy)")
	}

	// The load balancer: the one service that publishes a port.
	var lbName string
	var lb composeService
	for name, s := range cf.Services {
		if len(s.Ports) > 0 {
			if lbName != "" {
				t.Errorf("compose: %s and %s both publish ports; want one entry point", lbName, name)
			}
			lbName, lb = name, s
		}
	}
	if lbName == "" {
		t.Fatal("compose: no service publishes a port")
	}
	if !slices.ContainsFunc(lb.Ports, func(p string) bool { return strings.HasPrefix(p, strconv.Itoa(serverPort)+":") }) {
		t.Errorf("compose %s ports %q: want the server's port %d published", lbName, lb.Ports, serverPort)
	}
	lbIP := ""
	for _, n := range lb.Networks {
		if n.IPv4 != "" {
			lbIP = n.IPv4
		}
	}
	nginxConf := ""
	for _, v := range lb.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		if strings.HasPrefix(dst, "/etc/nginx/") {
			nginxConf = filepath.Join(repoRoot, src)
		}
	}
	if nginxConf == "" {
		t.Fatalf("compose %s: no nginx configuration mounted from the repository", lbName)
	}
	upstreams := nginxUpstreams(t, nginxConf)

	instances := map[string]bool{}
	for name, s := range workshops {
		t.Run(name, func(t *testing.T) {
			if s.Build == nil || s.Build.Context != "." || s.Build.Dockerfile != dockerfilePath {
				t.Errorf("build %+v: want context . and dockerfile %s", s.Build, dockerfilePath)
			}
			if imageRepo(s.Image) != workshopImage {
				t.Errorf("image %q: want %s (what the Dockerfile is built as)", s.Image, workshopImage)
			}
			env := map[string]string{}
			for k, v := range s.Environment {
				env[k] = interpolate(v)
			}
			checkEnv(t, "compose "+name, env)
			if inst := env["WORKSHOP_INSTANCE"]; inst == "" || instances[inst] {
				t.Errorf("WORKSHOP_INSTANCE %q: want a distinct name per instance", inst)
			} else {
				instances[inst] = true
			}
			checkRedisURL(t, env["WORKSHOP_REDIS_URL"], func(host string) bool { _, ok := cf.Services[host]; return ok })
			if env["WORKSHOP_PUBLIC_URL"] == "" {
				t.Error("WORKSHOP_PUBLIC_URL unset: links would name the instance, not the load balancer")
			}
			if lbIP == "" || !trusts(env["WORKSHOP_TRUSTED_PROXIES"], lbIP) {
				t.Errorf("WORKSHOP_TRUSTED_PROXIES %q does not cover the load balancer's fixed address %q",
					env["WORKSHOP_TRUSTED_PROXIES"], lbIP)
			}
			if env["WORKSHOP_DRAIN_DELAY"] == "" {
				t.Error("WORKSHOP_DRAIN_DELAY unset: clients would be moved before the balancer stops sending new ones")
			}
			stop, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil {
				t.Errorf("stop_grace_period %q: %v", s.StopGracePeriod, err)
			} else if need := shutdownBudget(t, env); stop <= need {
				t.Errorf("stop_grace_period %s: want more than drain delay + shutdown grace (%s)", stop, need)
			}
			if !slices.Contains(s.Expose, strconv.Itoa(serverPort)) {
				t.Errorf("expose %q: want %d", s.Expose, serverPort)
			}
			if got := strings.Join(s.Healthcheck.Test, " "); got != "CMD /workshop healthcheck" {
				t.Errorf("healthcheck %q: want the binary's own probe of %s", got, livePath)
			}
			if port, ok := upstreams[name]; !ok || port != serverPort {
				t.Errorf("nginx upstream for %s: got port %d (listed %v), want %d", name, port, ok, serverPort)
			}
		})
	}
	for host := range upstreams {
		if _, ok := workshops[host]; !ok {
			t.Errorf("nginx upstream %s is not a workshop service", host)
		}
	}
	checkNginx(t, nginxConf)
}

func TestDeployKustomize(t *testing.T) {
	dir := filepath.Join(repoRoot, "deploy/k8s")
	var k struct {
		Resources []string `yaml:"resources"`
		Images    []struct {
			Name   string `yaml:"name"`
			NewTag string `yaml:"newTag"`
		} `yaml:"images"`
		ConfigMapGenerator []struct {
			Name  string   `yaml:"name"`
			Files []string `yaml:"files"`
		} `yaml:"configMapGenerator"`
	}
	readYAML(t, "deploy/k8s/kustomization.yaml", &k)

	// Every manifest in the folder is applied: none forgotten, none missing.
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(k.Resources, b) {
			t.Errorf("kustomization: %s is not among the resources", b)
		}
	}
	configs := map[string]string{}
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.Files {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatalf("configMapGenerator %s: %v", g.Name, err)
			}
			configs[g.Name] += string(b)
		}
	}
	if len(k.Images) != 1 || k.Images[0].Name != workshopImage {
		t.Errorf("kustomization images %+v: want %s", k.Images, workshopImage)
	}

	objs := map[string]k8sObject{} // by "Kind/name"
	for _, r := range k.Resources {
		for _, o := range readK8s(t, filepath.Join("deploy/k8s", r)) {
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	get := func(kind, name string, spec any) k8sObject {
		t.Helper()
		o, ok := objs[kind+"/"+name]
		if !ok {
			t.Fatalf("k8s: no %s %q", kind, name)
		}
		if err := o.Spec.Decode(spec); err != nil {
			t.Fatalf("k8s %s/%s spec: %v", kind, name, err)
		}
		return o
	}

	var dep struct {
		Replicas int         `yaml:"replicas"`
		Selector labelSelect `yaml:"selector"`
		Template podTemplate `yaml:"template"`
	}
	get("Deployment", "workshop", &dep)
	if dep.Replicas < 2 {
		t.Errorf("Deployment replicas %d: want 2 or more", dep.Replicas)
	}
	if !dep.Selector.matches(dep.Template.Metadata.Labels) {
		t.Errorf("Deployment selector %v does not match its pods %v", dep.Selector.MatchLabels, dep.Template.Metadata.Labels)
	}
	pod := dep.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment: want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if imageRepo(c.Image) != workshopImage {
		t.Errorf("container image %q: want %s", c.Image, workshopImage)
	}
	if c.port("http") != serverPort {
		t.Errorf("container ports %+v: want %d named http", c.Ports, serverPort)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			env[e.Name] = "" // set at run time; only the name can be checked
			if !slices.Contains(envVars, e.Name) {
				t.Errorf("env %s: the binary does not read it", e.Name)
			}
			continue
		}
		env[e.Name] = e.Value
	}
	checkEnv(t, "Deployment", env)
	checkRedisURL(t, env["WORKSHOP_REDIS_URL"], func(host string) bool {
		_, ok := objs["Service/"+host]
		return ok
	})
	for name, p := range map[string]*probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		want := map[string]string{"readiness": readyPath, "liveness": livePath}[name]
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET of %s", name, want)
			continue
		}
		if p.HTTPGet.Path != want || c.resolvePort(p.HTTPGet.Port) != serverPort {
			t.Errorf("%s probe: GET %s on port %v, want %s on %d", name, p.HTTPGet.Path, p.HTTPGet.Port, want, serverPort)
		}
	}
	if pod.TerminationGracePeriodSeconds == nil {
		t.Error("terminationGracePeriodSeconds unset (30 s default)")
	} else if got, need := time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second, shutdownBudget(t, env); got <= need {
		t.Errorf("terminationGracePeriodSeconds %s: want more than drain delay + shutdown grace (%s)", got, need)
	}
	if env["WORKSHOP_DRAIN_DELAY"] == "" && c.Lifecycle == nil {
		t.Error("neither WORKSHOP_DRAIN_DELAY nor a preStop hook: clients would be moved before the endpoint is removed")
	}
	if !isTrue(pod.SecurityContext.RunAsNonRoot) && !isTrue(c.SecurityContext.RunAsNonRoot) {
		t.Error("runAsNonRoot not set")
	}
	if !isTrue(c.SecurityContext.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem not set")
	}
	if c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation not false")
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}

	var svc struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	get("Service", "workshop", &svc)
	if !(labelSelect{MatchLabels: svc.Selector}).matches(dep.Template.Metadata.Labels) {
		t.Errorf("Service selector %v does not match the pods %v", svc.Selector, dep.Template.Metadata.Labels)
	}
	if len(svc.Ports) != 1 || c.resolvePort(svc.Ports[0].TargetPort) != serverPort {
		t.Errorf("Service ports %+v: want one port whose target is %d", svc.Ports, serverPort)
	}

	var ing struct {
		IngressClassName string `yaml:"ingressClassName"`
		Rules            []struct {
			HTTP struct {
				Paths []struct {
					Backend struct {
						Service struct {
							Name string `yaml:"name"`
							Port struct {
								Name   string `yaml:"name"`
								Number int    `yaml:"number"`
							} `yaml:"port"`
						} `yaml:"service"`
					} `yaml:"backend"`
				} `yaml:"paths"`
			} `yaml:"http"`
		} `yaml:"rules"`
	}
	ingObj := get("Ingress", "workshop", &ing)
	for _, r := range ing.Rules {
		for _, p := range r.HTTP.Paths {
			b := p.Backend.Service
			if b.Name != "workshop" || len(svc.Ports) == 0 || (b.Port.Name != svc.Ports[0].Name && b.Port.Number != svc.Ports[0].Port) {
				t.Errorf("Ingress backend %+v: want the workshop Service's port %+v", b, svc.Ports)
			}
		}
	}
	for _, a := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		v, err := strconv.Atoi(ingObj.Metadata.Annotations["nginx.ingress.kubernetes.io/"+a])
		if err != nil || v < 3600 {
			t.Errorf("Ingress annotation %s %q: want at least 3600 s for WebSockets", a, ingObj.Metadata.Annotations["nginx.ingress.kubernetes.io/"+a])
		}
	}
	for a := range ingObj.Metadata.Annotations {
		if strings.Contains(a, "affinity") {
			t.Errorf("Ingress annotation %s: no sticky sessions (any instance serves any room)", a)
		}
	}

	var pdb struct {
		Selector labelSelect `yaml:"selector"`
	}
	get("PodDisruptionBudget", "workshop", &pdb)
	if !pdb.Selector.matches(dep.Template.Metadata.Labels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pods", pdb.Selector.MatchLabels)
	}
	var hpa struct {
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas int `yaml:"minReplicas"`
		MaxReplicas int `yaml:"maxReplicas"`
	}
	get("HorizontalPodAutoscaler", "workshop", &hpa)
	if hpa.ScaleTargetRef.Kind != "Deployment" || hpa.ScaleTargetRef.Name != "workshop" || hpa.MinReplicas < 2 || hpa.MaxReplicas < hpa.MinReplicas {
		t.Errorf("HorizontalPodAutoscaler %+v: want the workshop Deployment, at least 2 replicas", hpa)
	}

	var sts struct {
		ServiceName          string        `yaml:"serviceName"`
		Template             podTemplate   `yaml:"template"`
		VolumeClaimTemplates []k8sMetadata `yaml:"volumeClaimTemplates"`
	}
	get("StatefulSet", "redis", &sts)
	if _, ok := objs["Service/"+sts.ServiceName]; !ok {
		t.Errorf("StatefulSet redis: governing Service %q missing", sts.ServiceName)
	}
	if len(sts.VolumeClaimTemplates) == 0 {
		t.Error("StatefulSet redis: no PersistentVolumeClaim for the AOF")
	}
	usesConfig := false
	for _, v := range sts.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			conf, ok := configs[v.ConfigMap.Name]
			if !ok {
				t.Errorf("StatefulSet redis: config map %q is not generated", v.ConfigMap.Name)
			}
			usesConfig = true
			if !regexp.MustCompile(`(?m)^appendonly yes$`).MatchString(conf) || !regexp.MustCompile(`(?m)^appendfsync always$`).MatchString(conf) {
				t.Errorf("redis config %s: want appendonly yes and appendfsync always", v.ConfigMap.Name)
			}
		}
	}
	if !usesConfig {
		t.Error("StatefulSet redis: no configuration mounted")
	}
}

// TestDeployProbePaths checks that the probe paths the manifests use are
// routes of the real server.
func TestDeployProbePaths(t *testing.T) {
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, port, _ := net.SplitHostPort(cfg.addr); port != strconv.Itoa(serverPort) {
		t.Errorf("default listen address %q: the deployment files assume port %d", cfg.addr, serverPort)
	}
	bus := hub.NewLocalBus()
	store, err := hub.OpenBoltStore(t.TempDir(), bus)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(); bus.Close() })
	h, err := hub.New(hub.Config{Store: store, Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	e := hub.NewServer(h, hub.HTTPConfig{})
	for _, path := range []string{livePath, readyPath} {
		if !slices.ContainsFunc(e.Routes(), func(r *echo.Route) bool { return r.Method == "GET" && r.Path == path }) {
			t.Errorf("the server has no GET %s", path)
		}
	}
}

// checkEnv checks a set of WORKSHOP_* variables against what the binary
// reads and parses each value the way the binary will.
func checkEnv(t *testing.T, where string, env map[string]string) {
	t.Helper()
	for name, v := range env {
		if !strings.HasPrefix(name, "WORKSHOP_") {
			continue
		}
		if !slices.Contains(envVars, name) {
			t.Errorf("%s: %s is not a variable the binary reads (envVars)", where, name)
			continue
		}
		var err error
		switch name {
		case "WORKSHOP_SHUTDOWN_GRACE", "WORKSHOP_DRAIN_DELAY", "WORKSHOP_CLOSED_ROOM_TTL":
			_, err = time.ParseDuration(v) // parseConfig would fall back to the default silently
		case "WORKSHOP_TRUSTED_PROXIES":
			_, err = parseCIDRs(v)
		case "WORKSHOP_LOG_LEVEL":
			_, err = parseLevel(v)
		case "WORKSHOP_PPROF":
			_, err = strconv.ParseBool(v)
		case "WORKSHOP_ADDR":
			var port string
			if _, port, err = net.SplitHostPort(v); err == nil && port != strconv.Itoa(serverPort) {
				err = fmt.Errorf("port %s, want %d", port, serverPort)
			}
		case "WORKSHOP_PUBLIC_URL":
			if v != "" {
				var u *url.URL
				if u, err = url.Parse(v); err == nil && (u.Scheme == "" || u.Host == "") {
					err = errors.New("want scheme://host")
				}
			}
		}
		if err != nil {
			t.Errorf("%s: %s=%q: %v", where, name, v, err)
		}
	}
	if _, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Errorf("%s: parseConfig: %v", where, err)
	}
}

// shutdownBudget is what the orchestrator's stop timeout must exceed: drain
// delay plus shutdown grace (the binary's defaults where unset). The grace
// already includes the delay (run waits out the delay under the grace's
// timeout), so this is one delay more than needed: room for the process to
// exit and for clock skew. A delay as long as the grace would leave no time
// to move the clients.
func shutdownBudget(t *testing.T, env map[string]string) time.Duration {
	t.Helper()
	cfg, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.drainDelay >= cfg.shutdownGrace/2 {
		t.Errorf("drain delay %s leaves too little of the shutdown grace %s to move the clients", cfg.drainDelay, cfg.shutdownGrace)
	}
	return cfg.drainDelay + cfg.shutdownGrace
}

func checkRedisURL(t *testing.T, raw string, hostExists func(string) bool) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis" {
		t.Errorf("WORKSHOP_REDIS_URL %q: want redis://host:port/db", raw)
		return
	}
	if !hostExists(u.Hostname()) {
		t.Errorf("WORKSHOP_REDIS_URL %q: no service %q", raw, u.Hostname())
	}
}

// trusts reports whether the CIDR list covers ip.
func trusts(cidrs, ip string) bool {
	nets, err := parseCIDRs(cidrs)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(nets, func(n *net.IPNet) bool { return n.Contains(net.ParseIP(ip)) })
}

// nginxUpstreams answers the host:port servers of the nginx configuration's
// upstream blocks, by host.
func nginxUpstreams(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	inUpstream := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "upstream "):
			inUpstream = true
		case line == "}":
			inUpstream = false
		case inUpstream && strings.HasPrefix(line, "server "):
			f := strings.Fields(strings.TrimSuffix(line, ";"))
			host, port, err := net.SplitHostPort(f[1])
			if err != nil {
				t.Errorf("nginx: %q: %v", line, err)
				continue
			}
			out[host], _ = strconv.Atoi(port)
		}
	}
	return out
}

// checkNginx checks what makes the balancer fit for WebSockets and drains.
func checkNginx(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	conf := regexp.MustCompile(`#[^\n]*`).ReplaceAllString(string(b), "")
	conf = regexp.MustCompile(`\s+`).ReplaceAllString(conf, " ")
	for _, want := range []string{
		"proxy_http_version 1.1;",
		"proxy_set_header Upgrade $http_upgrade;",
		"proxy_set_header Connection $connection_upgrade;",
		"proxy_set_header Host $http_host;",
		"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
		"proxy_read_timeout 3600s;",
		"proxy_send_timeout 3600s;",
		"http_503", // a draining instance's refused upgrade goes to the other one
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx: missing %q", want)
		}
	}
	for _, sticky := range []string{"ip_hash", "hash ", "sticky"} {
		if strings.Contains(conf, sticky) {
			t.Errorf("nginx: %q: no sticky sessions", sticky)
		}
	}
}

// dockerfileLines answers the Dockerfile's instructions, continuation lines
// joined and comments dropped.
func dockerfileLines(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, dockerfilePath))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if more, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(strings.TrimSpace(more) + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// imageRepo is an image reference without its tag or digest.
func imageRepo(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// interpolate resolves compose's ${VAR:-default} and ${VAR} the way an
// empty environment would.
func interpolate(s string) string {
	return regexp.MustCompile(`\$\{[A-Z0-9_]+(?::?-([^}]*))?\}`).ReplaceAllString(s, "$1")
}

func isTrue(b *bool) bool { return b != nil && *b }

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// readK8s decodes every document of a manifest file.
func readK8s(t *testing.T, path string) []k8sObject {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []k8sObject
	dec := yaml.NewDecoder(f)
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("%s: a document without kind or name", path)
		}
		out = append(out, o)
	}
}

// composeFile is the part of docker-compose.yml the test reads.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Expose      []string          `yaml:"expose"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string          `yaml:"stop_grace_period"`
	Networks        composeNetworks `yaml:"networks"`
}

// composeNetworks reads both forms of a service's networks: a list of
// names, or a map of names to settings.
type composeNetworks map[string]struct {
	IPv4 string `yaml:"ipv4_address"`
}

func (n *composeNetworks) UnmarshalYAML(v *yaml.Node) error {
	*n = composeNetworks{}
	if v.Kind == yaml.SequenceNode {
		var names []string
		if err := v.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			(*n)[name] = struct {
				IPv4 string `yaml:"ipv4_address"`
			}{}
		}
		return nil
	}
	m := map[string]struct {
		IPv4 string `yaml:"ipv4_address"`
	}{}
	err := v.Decode(&m)
	for k, s := range m {
		(*n)[k] = s
	}
	return err
}

// k8sObject is a manifest with its spec left for a kind's own struct.
type k8sObject struct {
	Kind     string      `yaml:"kind"`
	Metadata k8sMetadata `yaml:"metadata"`
	Spec     yaml.Node   `yaml:"spec"`
}

type k8sMetadata struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type labelSelect struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// matches reports whether the selector selects pods with labels; an empty
// selector selects nothing here (a manifest that relies on it is a bug).
func (s labelSelect) matches(labels map[string]string) bool {
	if len(s.MatchLabels) == 0 {
		return false
	}
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type podTemplate struct {
	Metadata k8sMetadata `yaml:"metadata"`
	Spec     struct {
		TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		} `yaml:"securityContext"`
		Containers []container `yaml:"containers"`
		Volumes    []struct {
			Name      string `yaml:"name"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
		} `yaml:"volumes"`
	} `yaml:"spec"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      any    `yaml:"lifecycle"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// port answers the number of the container port with that name, or 0.
func (c container) port(name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// resolvePort turns a probe's or Service's port (a number or a port name)
// into a number.
func (c container) resolvePort(p any) int {
	switch v := p.(type) {
	case int:
		return v
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		return c.port(v)
	}
	return 0
}

// TestHealthcheck runs the image's HEALTHCHECK command against a real
// server: it finds the server from WORKSHOP_ADDR as the server does.
func TestHealthcheck(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{":8080", "http://127.0.0.1:8080/healthz"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080/healthz"},
		{"[::]:9000", "http://127.0.0.1:9000/healthz"},
		{"10.1.2.3:8080", "http://10.1.2.3:8080/healthz"},
		{"[::1]:8080", "http://[::1]:8080/healthz"},
	} {
		if got, err := probeURL(tc.addr, "/healthz"); err != nil || got != tc.want {
			t.Errorf("probeURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	if _, err := probeURL("8080", "/healthz"); err == nil {
		t.Error("probeURL(8080): want an error (no host:port)")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := startInProcess(t, ctx, map[string]string{"WORKSHOP_DATA_DIR": t.TempDir()})
	addr := strings.TrimPrefix(base, "http://")
	env := func(k string) string { return map[string]string{"WORKSHOP_ADDR": addr}[k] }
	if err := healthcheck(ctx, nil, env, io.Discard); err != nil {
		t.Errorf("healthcheck of a running server: %v", err)
	}
	if err := healthcheck(ctx, []string{"-path", readyPath}, env, io.Discard); err != nil {
		t.Errorf("healthcheck -path %s: %v", readyPath, err)
	}
	if err := healthcheck(ctx, []string{"-path", "/nope"}, env, io.Discard); err == nil {
		t.Error("healthcheck of a 404: want an error")
	}
	if err := healthcheck(ctx, []string{"-addr", freeAddr(t)}, env, io.Discard); err == nil {
		t.Error("healthcheck with nothing listening: want an error")
	}
}
