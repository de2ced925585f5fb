package main

// KEDA's ScaledObject and TriggerAuthentication (keda.sh/v1alpha1), checked against a minimal
// schema written here from KEDA's documentation: only the fields the examples use or may need,
// decoded strictly (an unknown field is an error), the trigger types the docs show (prometheus,
// postgresql, mongodb, cpu, memory) with the metadata keys each scaler reads. KEDA's own Go API
// module was not taken: it requires the cloud SDKs of every scaler and controller-runtime.

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const kedaAPIVersion = "keda.sh/v1alpha1"

type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ScaledObjectSpec `json:"spec"`
}

type ScaledObjectSpec struct {
	ScaleTargetRef   ScaleTarget     `json:"scaleTargetRef"`
	PollingInterval  *int32          `json:"pollingInterval,omitempty"`
	CooldownPeriod   *int32          `json:"cooldownPeriod,omitempty"`
	IdleReplicaCount *int32          `json:"idleReplicaCount,omitempty"`
	MinReplicaCount  *int32          `json:"minReplicaCount,omitempty"`
	MaxReplicaCount  *int32          `json:"maxReplicaCount,omitempty"`
	Fallback         *KedaFallback   `json:"fallback,omitempty"`
	Advanced         *KedaAdvanced   `json:"advanced,omitempty"`
	Triggers         []ScaleTriggers `json:"triggers"`
}

type ScaleTarget struct {
	APIVersion             string `json:"apiVersion,omitempty"`
	Kind                   string `json:"kind,omitempty"`
	Name                   string `json:"name"`
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

type KedaFallback struct {
	FailureThreshold int32 `json:"failureThreshold"`
	Replicas         int32 `json:"replicas"`
}

type KedaAdvanced struct {
	RestoreToOriginalReplicaCount bool           `json:"restoreToOriginalReplicaCount,omitempty"`
	HorizontalPodAutoscalerConfig *KedaHPAConfig `json:"horizontalPodAutoscalerConfig,omitempty"`
}

type KedaHPAConfig struct {
	Name     string                                         `json:"name,omitempty"`
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

type ScaleTriggers struct {
	Type              string             `json:"type"`
	Name              string             `json:"name,omitempty"`
	UseCachedMetrics  bool               `json:"useCachedMetrics,omitempty"`
	MetricType        string             `json:"metricType,omitempty"`
	Metadata          map[string]string  `json:"metadata"`
	AuthenticationRef *AuthenticationRef `json:"authenticationRef,omitempty"`
}

type AuthenticationRef struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
}

type TriggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              TriggerAuthenticationSpec `json:"spec"`
}

type TriggerAuthenticationSpec struct {
	SecretTargetRef []SecretTarget `json:"secretTargetRef"`
}

type SecretTarget struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

func (o *ScaledObject) DeepCopyObject() runtime.Object {
	c := *o
	return &c
}

func (o *TriggerAuthentication) DeepCopyObject() runtime.Object {
	c := *o
	return &c
}

// scaler says which metadata keys one trigger type requires, which it also accepts, and which
// of them are numbers. An alternative is a group of keys of which at least one must be there.
type scaler struct {
	required   []string
	oneOf      [][]string
	optional   []string
	numeric    []string
	authParams []string // what a TriggerAuthentication may supply instead of metadata
}

var scalers = map[string]scaler{
	"prometheus": {
		required: []string{"serverAddress", "query", "threshold"},
		optional: []string{"activationThreshold", "namespace", "customHeaders", "ignoreNullValues", "unsafeSsl", "queryParameters", "authModes", "timeout"},
		numeric:  []string{"threshold", "activationThreshold"},
	},
	"postgresql": {
		required:   []string{"query", "targetQueryValue"},
		oneOf:      [][]string{{"connectionFromEnv", "host", "connection"}},
		optional:   []string{"activationTargetQueryValue", "connectionFromEnv", "host", "port", "userName", "dbName", "sslmode", "passwordFromEnv"},
		numeric:    []string{"targetQueryValue", "activationTargetQueryValue"},
		authParams: []string{"connection", "host", "port", "userName", "dbName", "sslmode", "password"},
	},
	"mongodb": {
		required:   []string{"dbName", "collection", "query", "queryValue"},
		oneOf:      [][]string{{"connectionStringFromEnv", "host", "connectionString"}},
		optional:   []string{"activationQueryValue", "connectionStringFromEnv", "host", "port", "username", "passwordFromEnv", "scheme"},
		numeric:    []string{"queryValue", "activationQueryValue"},
		authParams: []string{"connectionString", "host", "port", "username", "password", "dbName", "scheme"},
	},
	"cpu":    {required: []string{"value"}, numeric: []string{"value"}},
	"memory": {required: []string{"value"}, numeric: []string{"value"}},
}

// isKEDA tells a keda.sh document from the built-in kinds.
func isKEDA(doc []byte) (bool, string, error) {
	var head metav1.TypeMeta
	asJSON, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return false, "", err
	}
	if err := json.UnmarshalCaseSensitivePreserveInts(asJSON, &head); err != nil {
		return false, "", err
	}
	if strings.HasPrefix(head.APIVersion, "keda.sh/") {
		return true, head.Kind, nil
	}
	return false, "", nil
}

// decodeKEDA decodes a keda.sh document strictly into the schema above.
func decodeKEDA(doc []byte, kind string) (runtime.Object, error) {
	asJSON, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var obj runtime.Object
	switch kind {
	case "ScaledObject":
		obj = &ScaledObject{}
	case "TriggerAuthentication":
		obj = &TriggerAuthentication{}
	default:
		return nil, fmt.Errorf("no kind %q is known in keda.sh (this checker knows ScaledObject and TriggerAuthentication)", kind)
	}
	strictErrs, err := json.UnmarshalStrict(asJSON, obj)
	if err != nil {
		return nil, err
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	if v := obj.GetObjectKind().GroupVersionKind().GroupVersion().String(); v != kedaAPIVersion {
		return nil, fmt.Errorf("apiVersion %q: expected %s", v, kedaAPIVersion)
	}
	return obj, nil
}

// checkScaledObject checks a ScaledObject on its own: replica bounds, triggers and their metadata.
func checkScaledObject(o *ScaledObject) []string {
	var problems []string
	s := o.Spec
	if s.ScaleTargetRef.Name == "" {
		problems = append(problems, "spec.scaleTargetRef.name: required")
	}
	if k := s.ScaleTargetRef.Kind; k != "" && k != "Deployment" && k != "StatefulSet" {
		problems = append(problems, fmt.Sprintf("spec.scaleTargetRef.kind %q: expected Deployment or StatefulSet", k))
	}
	minR, maxR := int32(0), int32(100) // KEDA's defaults
	if s.MinReplicaCount != nil {
		minR = *s.MinReplicaCount
	}
	if s.MaxReplicaCount != nil {
		maxR = *s.MaxReplicaCount
	}
	if minR < 0 || maxR < 1 || minR > maxR {
		problems = append(problems, fmt.Sprintf("spec: minReplicaCount %d and maxReplicaCount %d: expected 0 <= min <= max, max >= 1", minR, maxR))
	}
	if len(s.Triggers) == 0 {
		problems = append(problems, "spec.triggers: at least one trigger is required")
	}
	for i, t := range s.Triggers {
		at := fmt.Sprintf("spec.triggers[%d]", i)
		sc, known := scalers[t.Type]
		if !known {
			problems = append(problems, fmt.Sprintf("%s.type %q: not a scaler this checker knows (%s)", at, t.Type, strings.Join(knownScalers(), ", ")))
			continue
		}
		if t.MetricType != "" && t.MetricType != "AverageValue" && t.MetricType != "Value" && t.MetricType != "Utilization" {
			problems = append(problems, fmt.Sprintf("%s.metricType %q: expected AverageValue, Value or Utilization", at, t.MetricType))
		}
		allowed := map[string]bool{}
		for _, k := range append(append([]string{}, sc.required...), sc.optional...) {
			allowed[k] = true
		}
		keys := make([]string, 0, len(t.Metadata))
		for k := range t.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !allowed[k] {
				problems = append(problems, fmt.Sprintf("%s.metadata.%s: not a %s scaler field", at, k, t.Type))
			}
		}
		for _, k := range sc.required {
			if t.Metadata[k] == "" {
				problems = append(problems, fmt.Sprintf("%s.metadata.%s: required by the %s scaler", at, k, t.Type))
			}
		}
		if t.AuthenticationRef == nil {
			for _, group := range sc.oneOf {
				found := false
				for _, k := range group {
					found = found || t.Metadata[k] != ""
				}
				if !found {
					problems = append(problems, fmt.Sprintf("%s.metadata: the %s scaler needs one of %s, or an authenticationRef", at, t.Type, strings.Join(group, ", ")))
				}
			}
		} else if k := t.AuthenticationRef.Kind; k != "" && k != "TriggerAuthentication" && k != "ClusterTriggerAuthentication" {
			problems = append(problems, fmt.Sprintf("%s.authenticationRef.kind %q: expected TriggerAuthentication or ClusterTriggerAuthentication", at, k))
		}
		for _, k := range sc.numeric {
			if v, ok := t.Metadata[k]; ok {
				if _, err := strconv.ParseFloat(v, 64); err != nil {
					problems = append(problems, fmt.Sprintf("%s.metadata.%s %q: not a number", at, k, v))
				}
			}
		}
	}
	return problems
}

func checkTriggerAuthentication(o *TriggerAuthentication) []string {
	var problems []string
	if len(o.Spec.SecretTargetRef) == 0 {
		problems = append(problems, "spec.secretTargetRef: at least one is required")
	}
	for i, ref := range o.Spec.SecretTargetRef {
		if ref.Parameter == "" || ref.Name == "" || ref.Key == "" {
			problems = append(problems, fmt.Sprintf("spec.secretTargetRef[%d]: parameter, name and key are required", i))
		}
	}
	return problems
}

func knownScalers() []string {
	names := make([]string, 0, len(scalers))
	for n := range scalers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkAutoscalers checks the autoscalers of one build against its objects: each scales a
// workload of the build, no workload has two, and each TriggerAuthentication a trigger names
// is there, with the parameters its scaler takes.
func checkAutoscalers(objects []object) []string {
	have := map[string]bool{}
	auths := map[string]*TriggerAuthentication{}
	for _, o := range objects {
		have[o.kind+"/"+o.name] = true
		if a, ok := o.obj.(*TriggerAuthentication); ok {
			auths[a.Name] = a
		}
	}
	var problems []string
	scaledBy := map[string]string{}
	target := func(o object, kind, name string) {
		id := kind + "/" + name
		if !have[id] {
			problems = append(problems, fmt.Sprintf("%s: scaleTargetRef %s is not part of this build", o, id))
			return
		}
		if other, ok := scaledBy[id]; ok {
			problems = append(problems, fmt.Sprintf("%s: %s is already scaled by %s; one autoscaler per workload", o, id, other))
			return
		}
		scaledBy[id] = o.String()
	}
	for _, o := range objects {
		switch v := o.obj.(type) {
		case *ScaledObject:
			kind := v.Spec.ScaleTargetRef.Kind
			if kind == "" {
				kind = "Deployment"
			}
			target(o, kind, v.Spec.ScaleTargetRef.Name)
			for i, t := range v.Spec.Triggers {
				ref := t.AuthenticationRef
				if ref == nil || ref.Kind == "ClusterTriggerAuthentication" {
					continue
				}
				a, ok := auths[ref.Name]
				if !ok {
					problems = append(problems, fmt.Sprintf("%s: spec.triggers[%d].authenticationRef TriggerAuthentication/%s is not part of this build", o, i, ref.Name))
					continue
				}
				params := map[string]bool{}
				for _, p := range scalers[t.Type].authParams {
					params[p] = true
				}
				for _, s := range a.Spec.SecretTargetRef {
					if !params[s.Parameter] {
						problems = append(problems, fmt.Sprintf("%s: TriggerAuthentication/%s parameter %q is not one the %s scaler takes", o, a.Name, s.Parameter, t.Type))
					}
				}
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			target(o, v.Spec.ScaleTargetRef.Kind, v.Spec.ScaleTargetRef.Name)
		}
	}
	return problems
}
