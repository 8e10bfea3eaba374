// Validates KEDA ScaledObjects and Prometheus-operator ServiceMonitors with the npm
// @kubernetes-models validators (generated from the projects' own CRDs). Reads a JSON array of
// documents on stdin; prints one line per problem and exits 1 if there is any.
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const models = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};
let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = 0;
for (const { source, doc } of JSON.parse(input)) {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const Model = models[key];
  const name = `${source}: ${doc.kind}/${doc.metadata?.name}`;
  if (!Model) {
    console.log(`${name}: no validator for ${key}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
