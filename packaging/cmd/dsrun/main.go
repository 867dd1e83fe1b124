// Command dsrun prints the 'docker run' arguments that run rootd's image the
// way deploy/kubernetes/daemonset.yaml runs it, one argument per line, so
// scripts/image-test.sh tests the DaemonSet's settings rather than a copy:
// host PID and network namespaces, the capabilities, the read-only root,
// no-new-privileges, the user, the memory and CPU limits, every hostPath
// mount (read-only where the manifest says so), the environment, the image
// and the arguments.
//
//	go run ./cmd/dsrun -f ../deploy/kubernetes/daemonset.yaml -image rootd:0.4.0 \
//	    -socket-dir /tmp/x [-propagation=false] [-- extra rootd args]
//
// -socket-dir replaces the host side of the socket volume (CI must not take
// the machine's real /var/lib/pcp/pmcd); -propagation=false drops rslave
// where the host's / is a private mount (docker refuses rslave there).
// With -probe it prints the liveness probe's command instead.
package main

import (
	"flag"
	"fmt"
	"os"
	"path"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	file := flag.String("f", "../deploy/kubernetes/daemonset.yaml", "the DaemonSet manifest")
	image := flag.String("image", "", "image to run (default: the manifest's)")
	socketDir := flag.String("socket-dir", "", "host directory for the socket instead of the manifest's")
	propagation := flag.Bool("propagation", true, "translate HostToContainer into rslave")
	probe := flag.Bool("probe", false, "print the liveness probe command instead")
	flag.Parse()
	data, err := os.ReadFile(*file)
	if err != nil {
		fail(err)
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(data, &ds); err != nil {
		fail(err)
	}
	pod := ds.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		fail(fmt.Errorf("want one container, have %d", len(pod.Containers)))
	}
	c := pod.Containers[0]
	if *probe {
		if c.LivenessProbe == nil || c.LivenessProbe.Exec == nil {
			fail(fmt.Errorf("no exec liveness probe"))
		}
		print(c.LivenessProbe.Exec.Command...)
		return
	}
	var a []string
	if pod.HostPID {
		a = append(a, "--pid", "host")
	}
	if pod.HostNetwork {
		a = append(a, "--network", "host")
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.Privileged != nil && *sc.Privileged {
			a = append(a, "--privileged")
		}
		if sc.Capabilities != nil {
			for _, d := range sc.Capabilities.Drop {
				a = append(a, "--cap-drop", string(d))
			}
			for _, d := range sc.Capabilities.Add {
				a = append(a, "--cap-add", string(d))
			}
		}
		if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
			a = append(a, "--read-only")
		}
		if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			a = append(a, "--security-opt", "no-new-privileges")
		}
		if sc.RunAsUser != nil {
			g := int64(0)
			if sc.RunAsGroup != nil {
				g = *sc.RunAsGroup
			}
			a = append(a, "--user", fmt.Sprintf("%d:%d", *sc.RunAsUser, g))
		}
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		a = append(a, "--memory", fmt.Sprint(q.Value()))
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		a = append(a, "--cpus", fmt.Sprintf("%.3f", float64(q.MilliValue())/1000))
	}
	for _, e := range c.Env {
		a = append(a, "--env", e.Name+"="+e.Value)
	}
	socket := ""
	for i, arg := range c.Args {
		if (arg == "-s" || arg == "--s") && i+1 < len(c.Args) {
			socket = c.Args[i+1]
		}
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok || v.HostPath == nil {
			fail(fmt.Errorf("mount %s is not a hostPath volume", m.Name))
		}
		host := v.HostPath.Path
		if *socketDir != "" && socket != "" && m.MountPath == path.Dir(socket) {
			host = *socketDir
		}
		opts := []string{}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		if *propagation && m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationHostToContainer {
			opts = append(opts, "rslave")
		}
		spec := host + ":" + m.MountPath
		if len(opts) > 0 {
			spec += ":" + strings.Join(opts, ",")
		}
		a = append(a, "--volume", spec)
	}
	img := c.Image
	if *image != "" {
		img = *image
	}
	if len(c.Command) > 0 {
		a = append(a, "--entrypoint", c.Command[0])
	}
	a = append(a, img)
	if len(c.Command) > 1 {
		a = append(a, c.Command[1:]...)
	}
	a = append(a, c.Args...)
	a = append(a, flag.Args()...)
	print(a...)
}

func print(args ...string) {
	for _, s := range args {
		if strings.Contains(s, "\n") {
			fail(fmt.Errorf("argument with a newline: %q", s))
		}
		fmt.Println(s)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dsrun:", err)
	os.Exit(1)
}
