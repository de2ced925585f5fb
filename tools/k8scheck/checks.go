package main

// Checks beyond the types: names, labels and annotations as the API server validates them, pod
// templates that are consistent with themselves, and objects that select the pods they mean to.

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// describe gives an object's kind and name, for messages.
func describe(obj runtime.Object) (string, string) {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if accessor, err := meta.Accessor(obj); err == nil {
		return kind, accessor.GetName()
	}
	return kind, ""
}

// checkObject checks one object on its own.
func checkObject(obj runtime.Object) []string {
	problems := checkMetadata(obj)
	if template, path := podTemplate(obj); template != nil {
		problems = append(problems, checkPodTemplate(template, path)...)
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		problems = append(problems, checkSelectsTemplate(o.Spec.Selector, o.Spec.Template.Labels)...)
	case *appsv1.StatefulSet:
		problems = append(problems, checkSelectsTemplate(o.Spec.Selector, o.Spec.Template.Labels)...)
	case *appsv1.DaemonSet:
		problems = append(problems, checkSelectsTemplate(o.Spec.Selector, o.Spec.Template.Labels)...)
	case *ScaledObject:
		problems = append(problems, checkScaledObject(o)...)
	case *TriggerAuthentication:
		problems = append(problems, checkTriggerAuthentication(o)...)
	case *batchv1.CronJob:
		if fields := strings.Fields(o.Spec.Schedule); len(fields) != 5 && !strings.HasPrefix(o.Spec.Schedule, "@") {
			problems = append(problems, fmt.Sprintf("spec.schedule %q: expected five fields (minute hour day month weekday)", o.Spec.Schedule))
		}
		if len(o.Name) > 52 {
			problems = append(problems, "metadata.name: a CronJob's name is at most 52 characters")
		}
	}
	return problems
}

func checkMetadata(obj runtime.Object) []string {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return []string{err.Error()}
	}
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	path := field.NewPath("metadata")
	var errs field.ErrorList
	nameIs := apivalidation.NameIsDNSSubdomain
	switch kind {
	case "Service":
		nameIs = apivalidation.NameIsDNS1035Label
	case "Namespace":
		nameIs = apivalidation.NameIsDNSLabel
	}
	if accessor.GetName() == "" {
		errs = append(errs, field.Required(path.Child("name"), ""))
	} else {
		for _, msg := range nameIs(accessor.GetName(), false) {
			errs = append(errs, field.Invalid(path.Child("name"), accessor.GetName(), msg))
		}
	}
	if ns := accessor.GetNamespace(); ns != "" {
		if kind == "Namespace" {
			errs = append(errs, field.Forbidden(path.Child("namespace"), "a Namespace has none"))
		}
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(path.Child("namespace"), ns, msg))
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(accessor.GetLabels(), path.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(accessor.GetAnnotations(), path.Child("annotations"))...)
	return messages(errs)
}

// podTemplate returns the pod template of a workload and its field path.
func podTemplate(obj runtime.Object) (*corev1.PodTemplateSpec, *field.Path) {
	spec := field.NewPath("spec")
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template, spec.Child("template")
	case *appsv1.StatefulSet:
		return &o.Spec.Template, spec.Child("template")
	case *appsv1.DaemonSet:
		return &o.Spec.Template, spec.Child("template")
	case *appsv1.ReplicaSet:
		return &o.Spec.Template, spec.Child("template")
	case *batchv1.Job:
		return &o.Spec.Template, spec.Child("template")
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template, spec.Child("jobTemplate", "spec", "template")
	}
	return nil, nil
}

func checkPodTemplate(t *corev1.PodTemplateSpec, path *field.Path) []string {
	var errs field.ErrorList
	errs = append(errs, metav1validation.ValidateLabels(t.Labels, path.Child("metadata", "labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(t.Annotations, path.Child("metadata", "annotations"))...)
	volumes := map[string]bool{}
	for i, v := range t.Spec.Volumes {
		if volumes[v.Name] {
			errs = append(errs, field.Duplicate(path.Child("spec", "volumes").Index(i).Child("name"), v.Name))
		}
		volumes[v.Name] = true
	}
	for i, c := range t.Spec.InitContainers {
		errs = append(errs, checkContainer(c, volumes, path.Child("spec", "initContainers").Index(i))...)
	}
	for i, c := range t.Spec.Containers {
		errs = append(errs, checkContainer(c, volumes, path.Child("spec", "containers").Index(i))...)
	}
	return messages(errs)
}

// checkContainer checks a container against its pod: ports, mounts, env names, probes.
func checkContainer(c corev1.Container, volumes map[string]bool, cpath *field.Path) field.ErrorList {
	var errs field.ErrorList
	ports := map[string]bool{}
	for j, p := range c.Ports {
		if p.Name == "" {
			continue
		}
		for _, msg := range validation.IsValidPortName(p.Name) {
			errs = append(errs, field.Invalid(cpath.Child("ports").Index(j).Child("name"), p.Name, msg))
		}
		ports[p.Name] = true
	}
	for j, m := range c.VolumeMounts {
		if !volumes[m.Name] {
			errs = append(errs, field.NotFound(cpath.Child("volumeMounts").Index(j).Child("name"), m.Name))
		}
	}
	for j, e := range c.Env {
		for _, msg := range validation.IsEnvVarName(e.Name) {
			errs = append(errs, field.Invalid(cpath.Child("env").Index(j).Child("name"), e.Name, msg))
		}
		if e.ValueFrom != nil && e.Value != "" {
			errs = append(errs, field.Invalid(cpath.Child("env").Index(j), e.Name, "both value and valueFrom"))
		}
	}
	probes := []struct {
		name  string
		probe *corev1.Probe
	}{{"startupProbe", c.StartupProbe}, {"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}}
	for _, p := range probes {
		name, probe := p.name, p.probe
		if probe == nil {
			continue
		}
		var port *intstr.IntOrString
		switch {
		case probe.HTTPGet != nil:
			port = &probe.HTTPGet.Port
		case probe.TCPSocket != nil:
			port = &probe.TCPSocket.Port
		}
		if port != nil && port.Type == intstr.String && !ports[port.StrVal] {
			errs = append(errs, field.NotFound(cpath.Child(name, "port"), port.StrVal))
		}
		if name != "readinessProbe" && probe.SuccessThreshold > 1 {
			errs = append(errs, field.Invalid(cpath.Child(name, "successThreshold"), probe.SuccessThreshold, "must be 1"))
		}
	}
	return errs
}

func checkSelectsTemplate(selector *metav1.LabelSelector, templateLabels map[string]string) []string {
	s, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return []string{fmt.Sprintf("spec.selector: %v", err)}
	}
	if s.Empty() {
		return []string{"spec.selector: empty"}
	}
	if !s.Matches(labels.Set(templateLabels)) {
		return []string{fmt.Sprintf("spec.selector %s does not match the template's labels %v", s, templateLabels)}
	}
	return nil
}

// checkTogether checks the objects of one build against each other: each Service,
// PodDisruptionBudget and NetworkPolicy selects the pods of exactly one workload (a CronJob's pods
// carrying the agents' label would be taken for agents), and a Service's named port exists there.
func checkTogether(objects []object) []string {
	type workload struct {
		o        object
		template *corev1.PodTemplateSpec
	}
	var workloads []workload
	for _, o := range objects {
		if t, _ := podTemplate(o.obj); t != nil {
			workloads = append(workloads, workload{o, t})
		}
	}
	selected := func(selector labels.Selector) []workload {
		var found []workload
		for _, w := range workloads {
			if selector.Matches(labels.Set(w.template.Labels)) {
				found = append(found, w)
			}
		}
		return found
	}
	problems := checkAutoscalers(objects)
	expectOne := func(o object, selector labels.Selector) []workload {
		found := selected(selector)
		switch {
		case len(found) == 0:
			problems = append(problems, fmt.Sprintf("%s: selector %s selects no pod template of this build", o, selector))
		case len(found) > 1:
			names := make([]string, len(found))
			for i, w := range found {
				names[i] = w.o.String()
			}
			problems = append(problems, fmt.Sprintf("%s: selector %s selects the pods of %s; expected one workload", o, selector, strings.Join(names, " and ")))
			return nil
		}
		return found
	}
	for _, o := range objects {
		switch v := o.obj.(type) {
		case *corev1.Service:
			if len(v.Spec.Selector) == 0 {
				continue
			}
			for _, w := range expectOne(o, labels.SelectorFromSet(v.Spec.Selector)) {
				problems = append(problems, checkTargetPorts(o, v, w.template)...)
			}
		case *policyv1.PodDisruptionBudget:
			if s, err := metav1.LabelSelectorAsSelector(v.Spec.Selector); err == nil {
				expectOne(o, s)
			}
		case *networkingv1.NetworkPolicy:
			if s, err := metav1.LabelSelectorAsSelector(&v.Spec.PodSelector); err == nil && !s.Empty() {
				expectOne(o, s)
			}
		}
	}
	return problems
}

func checkTargetPorts(o object, svc *corev1.Service, t *corev1.PodTemplateSpec) []string {
	named := map[string]bool{}
	for _, c := range t.Spec.Containers {
		for _, p := range c.Ports {
			named[p.Name] = true
		}
	}
	var problems []string
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.Type == intstr.String && !named[p.TargetPort.StrVal] {
			problems = append(problems, fmt.Sprintf("%s: targetPort %q is no container port of the selected pods", o, p.TargetPort.StrVal))
		}
	}
	return problems
}

// externalReferences lists the Secrets and ConfigMaps that pod templates need and the build does
// not contain: they must exist in the cluster before the pods can start.
func externalReferences(objects []object) []string {
	have := map[string]bool{}
	for _, o := range objects {
		have[o.kind+"/"+o.name] = true
	}
	need := map[string]map[string]bool{}
	add := func(kind, name, key string) {
		id := kind + "/" + name
		if have[id] {
			return
		}
		if need[id] == nil {
			need[id] = map[string]bool{}
		}
		if key != "" {
			need[id][key] = true
		}
	}
	for _, o := range objects {
		t, _ := podTemplate(o.obj)
		if t == nil {
			continue
		}
		for _, v := range t.Spec.Volumes {
			if v.Secret != nil && (v.Secret.Optional == nil || !*v.Secret.Optional) {
				for _, item := range v.Secret.Items {
					add("Secret", v.Secret.SecretName, item.Key)
				}
			}
		}
		for _, c := range t.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					add("Secret", e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
				}
				if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
					add("ConfigMap", e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key)
				}
			}
		}
	}
	var notes []string
	for id, keys := range need {
		list := make([]string, 0, len(keys))
		for k := range keys {
			list = append(list, k)
		}
		sort.Strings(list)
		notes = append(notes, fmt.Sprintf("expects %s (keys %s), which is not part of this build", id, strings.Join(list, ", ")))
	}
	sort.Strings(notes)
	return notes
}

func messages(errs field.ErrorList) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}
