/**
 * What the broker container gets from outside: volumes with their mounts, and environment variables. Each
 * file lands where config.ts tells the broker to look (both take the paths from layout.ts).
 */
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { KeyRef, SmqBridge, SmqCluster } from '../api/types.js';
import { apiTokenRef } from './api-token.js';
import { CONFIG_KEY, PATHS } from './layout.js';
import { names } from './names.js';

/** The name of the volume claim template, and of its mount. */
export const DATA_VOLUME = 'data';

/** Secret files are readable by the owner and the pod's group (fsGroup) only. */
const SECRET_MODE = 0o440;

/** The pod's volumes and the container's mounts, in a fixed order. */
export interface PodFiles {
  readonly volumes: V1Volume[];
  readonly mounts: V1VolumeMount[];
}

/** Directory and file name of a path. */
function split(path: string): [string, string] {
  const slash = path.lastIndexOf('/');
  return [path.slice(0, slash), path.slice(slash + 1)];
}

/**
 * Volumes and mounts for `cluster` (and its `bridge`). Secrets are mounted as directories, never with
 * `subPath`: the kubelet updates a directory mount in place when a Secret changes (a renewed cert-manager
 * certificate, a new password file), and the broker reloads those files without a restart. Only the smq YAML
 * is a `subPath` mount; it never changes under a running pod, since a change rolls the pods.
 */
export function podFiles(cluster: SmqCluster, bridge?: SmqBridge): PodFiles {
  const spec = cluster.spec;
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  const add = (volume: V1Volume, mountPath: string, options: { subPath?: string; writable?: boolean } = {}): void => {
    volumes.push(volume);
    const mount: V1VolumeMount = { name: volume.name, mountPath };
    if (options.writable !== true) mount.readOnly = true;
    if (options.subPath !== undefined) mount.subPath = options.subPath;
    mounts.push(mount);
  };
  const secretDir = (name: string, secretName: string, dir: string): void => {
    add({ name, secret: { secretName, defaultMode: SECRET_MODE } }, dir);
  };
  // One key of a Secret or ConfigMap as one file, the only one in its directory.
  const oneFile = (name: string, source: 'secret' | 'configMap', ref: KeyRef, file: string): void => {
    const [dir, path] = split(file);
    const items = [{ key: ref.key, path }];
    add(source === 'secret'
      ? { name, secret: { secretName: ref.name, defaultMode: SECRET_MODE, items } }
      : { name, configMap: { name: ref.name, items } }, dir);
  };

  add({ name: 'config', configMap: { name: names(cluster).configMap, items: [{ key: CONFIG_KEY, path: CONFIG_KEY }] } },
    PATHS.configFile, { subPath: CONFIG_KEY });
  mounts.push({ name: DATA_VOLUME, mountPath: PATHS.data });
  if (spec.tls !== undefined) secretDir('tls', spec.tls.secretName, PATHS.tls);
  if (spec.etcd.tlsSecret !== undefined) secretDir('etcd-tls', spec.etcd.tlsSecret, PATHS.etcd);
  if (spec.auth !== undefined) oneFile('auth', 'secret', spec.auth.passwordFile, PATHS.authFile);
  if (spec.acl !== undefined) oneFile('acl', spec.acl.fromSecret === true ? 'secret' : 'configMap', spec.acl.rules, PATHS.aclFile);
  oneFile('api-token', 'secret', apiTokenRef(cluster), PATHS.tokenFile);
  const kafkaTls = bridge?.spec.kafka.tls;
  if (kafkaTls !== undefined) secretDir('kafka-tls', kafkaTls.secretName, PATHS.kafka);
  // A writable /tmp for libraries that expect one, with the root filesystem read-only.
  add({ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }, PATHS.tmp, { writable: true });
  return { volumes, mounts };
}

/** A variable from a Secret key. */
function fromSecret(name: string, secret: string, key: string): V1EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}

/**
 * The container's environment, sorted by name: the node id from the pod's name (stable across restarts
 * of a StatefulSet pod, so a node comes back as itself and resumes its inbox), and the credentials the smq
 * YAML must not hold. The etcd and SASL user names come from the same Secrets as the passwords, by variable
 * too: the operator needs no read access to those Secrets, and a user and its password always match.
 */
export function podEnv(cluster: SmqCluster, bridge?: SmqBridge): V1EnvVar[] {
  const env: V1EnvVar[] = [{ name: 'SMQ_BROKER', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }];
  const etcdAuth = cluster.spec.etcd.authSecret;
  if (etcdAuth !== undefined) {
    env.push(fromSecret('SMQ_ETCD_USERNAME', etcdAuth, 'username'), fromSecret('SMQ_ETCD_PASSWORD', etcdAuth, 'password'));
  }
  const sasl = bridge?.spec.kafka.sasl;
  if (sasl !== undefined) {
    env.push(
      fromSecret('SMQ_BRIDGE_KAFKA_SASL_USERNAME', sasl.secretName, 'username'),
      fromSecret('SMQ_BRIDGE_KAFKA_SASL_PASSWORD', sasl.secretName, 'password'),
    );
  }
  return env.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
