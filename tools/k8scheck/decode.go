package main

// Strict decoding: YAML documents into the API's Go types (the client-go scheme knows every
// built-in kind), kustomization files into kustomize's own type, and kustomize builds in process.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The API server's own decoder in strict mode: unknown and duplicate fields are errors, field
// names are case-sensitive, and a value of the wrong type does not decode at all.
var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// object is one decoded manifest and where it came from.
type object struct {
	where string // file (and document number) or kustomize build
	obj   runtime.Object
	kind  string
	name  string
}

func (o object) String() string { return o.kind + "/" + o.name }

// splitDocuments returns the non-empty YAML documents of a stream.
func splitDocuments(data []byte) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if hasContent(doc) {
			docs = append(docs, doc)
		}
	}
}

// hasContent is false for a document of comments and blank lines only.
func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed != "" && !strings.HasPrefix(trimmed, "#") && trimmed != "---" {
			return true
		}
	}
	return false
}

// decodeStrict decodes one document into its API type; every strictness problem is an error.
func decodeStrict(doc []byte) (runtime.Object, error) {
	if keda, kind, err := isKEDA(doc); err != nil {
		return nil, err
	} else if keda {
		return decodeKEDA(doc, kind)
	}
	obj, gvk, err := strictDecoder.Decode(doc, nil, nil)
	if err != nil {
		return nil, err
	}
	if gvk == nil || gvk.Kind == "" {
		return nil, errors.New("no kind")
	}
	return obj, nil
}

// decodeDocuments decodes every document of a YAML stream; where says where it came from.
func decodeDocuments(r *report, where string, data []byte) []object {
	docs, err := splitDocuments(data)
	if err != nil {
		r.fail("%s: not YAML: %v", where, err)
		return nil
	}
	if len(docs) == 0 {
		r.fail("%s: no document in it", where)
		return nil
	}
	var objects []object
	for i, doc := range docs {
		at := where
		if len(docs) > 1 {
			at = fmt.Sprintf("%s (document %d)", where, i+1)
		}
		obj, err := decodeStrict(doc)
		if err != nil {
			r.fail("%s: %v", at, err)
			continue
		}
		kind, name := describe(obj)
		objects = append(objects, object{where: at, obj: obj, kind: kind, name: name})
	}
	return objects
}

// checkFile checks every document of one manifest file on its own.
func checkFile(r *report, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		r.fail("%v", err)
		return
	}
	for _, o := range decodeDocuments(r, path, data) {
		if problems := checkObject(o.obj); len(problems) > 0 {
			for _, p := range problems {
				r.fail("%s: %s: %s", o.where, o, p)
			}
			continue
		}
		r.ok("%s: %s", o.where, o)
	}
}

// decodeKustomization decodes a kustomization file strictly into kustomize's type.
func decodeKustomization(data []byte) (*types.Kustomization, error) {
	asJSON, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	var k types.Kustomization
	strictErrs, err := json.UnmarshalStrict(asJSON, &k)
	if err != nil {
		return nil, err
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	return &k, nil
}

// checkKustomization decodes the kustomization file, builds its folder and checks what comes out.
func checkKustomization(r *report, dir, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		r.fail("%v", err)
		return
	}
	if _, err := decodeKustomization(data); err != nil {
		r.fail("%s: %v", file, err)
		return
	}
	where := "kustomize build " + filepath.ToSlash(dir)
	built, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		r.fail("%s: %v", where, err)
		return
	}
	failuresBefore := r.failures
	var objects []object
	for _, res := range built.Resources() {
		doc, err := res.AsYAML()
		if err != nil {
			r.fail("%s: %s: %v", where, res.CurId(), err)
			continue
		}
		at := fmt.Sprintf("%s: %s", where, res.CurId())
		obj, err := decodeStrict(doc)
		if err != nil {
			r.fail("%s: %v", at, err)
			continue
		}
		kind, name := describe(obj)
		o := object{where: where, obj: obj, kind: kind, name: name}
		for _, p := range checkObject(obj) {
			r.fail("%s: %s: %s", where, o, p)
		}
		objects = append(objects, o)
	}
	for _, p := range checkTogether(objects) {
		r.fail("%s: %s", where, p)
	}
	if r.failures == failuresBefore {
		r.ok("%s: %d objects", where, len(objects))
		for _, n := range externalReferences(objects) {
			r.note("%s: %s", where, n)
		}
	}
}
