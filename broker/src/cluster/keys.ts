/**
 * The etcd key layout of one cluster, all under `/smq/<cluster>/` (README, "Cluster"):
 *
 *   members/<node>                    lease   who is up: id, name, addresses, version, start time, load
 *   routes/<node>/<filter>            (lease) a node has subscribers for <filter> (or `$share/<group>/<filter>`);
 *                                             without a lease on a node with a store (routes.ts)
 *   inbox/<target>/<source>/<seq>             a batch of messages from <source> for <target>, deleted once consumed
 *   retained/<topic>                          the retained message of <topic>
 *   clients/<client id>               lease   the node a client id is connected to
 *   takeover/<node>/<client id>       lease   asks <node> to disconnect a client that connected elsewhere
 *   sessions/<client id>                      the node holding the client's persistent session
 *   handoff/<node>/<client id>        lease   asks <node> for a persistent session (value: the asking node)
 *   moves/<node>/<client id>          lease   a persistent session (or the rest of it) on its way to <node>
 *   moved/<node>/<client id>          lease   the new holder's acknowledgement to <node>, the old one
 *   batches/<node>/<batch id>         lease   many sessions (or the rest of them) on their way to <node> at a drain
 *   batched/<node>/<batch id>         lease   the new holder's acknowledgement of a batch to <node>, the old one
 *   fence/<node>/<id>                 lease   <node> asks every other node to flush what it routed before a move
 *   fenced/<node>/<id>/<other>        lease   <other> has flushed it
 *   query/<node>/<id>                 lease   a question for <node> (management API: its clients, a kick, ...)
 *   answer/<asker>/<id>               lease   <node>'s answer, read and deleted by the asker
 *   bridge/<id>                               a Kafka bridge mapping (MQTT topic filter -> Kafka topic)
 *
 * Keys that carry a lease vanish with the node that wrote them; inbox and retained keys outlive restarts.
 */
export class Keys {
  readonly root: string;
  readonly members: string;
  readonly routes: string;
  readonly retainedPrefix: string;
  /** The prefix of every inbox. */
  readonly inboxes: string;
  private readonly clients: string;
  private readonly takeovers: string;

  constructor(cluster: string) {
    this.root = `/smq/${cluster}/`;
    this.members = this.root + 'members/';
    this.routes = this.root + 'routes/';
    this.retainedPrefix = this.root + 'retained/';
    this.inboxes = this.root + 'inbox/';
    this.clients = this.root + 'clients/';
    this.takeovers = this.root + 'takeover/';
  }

  /** The node holding a persistent session. */
  session(clientId: string): string {
    return `${this.root}sessions/${clientId}`;
  }

  /** Session requests for `node`; the client id is the rest of the key. */
  handoff(node: string, clientId = ''): string {
    return `${this.root}handoff/${node}/${clientId}`;
  }

  /** Fence requests; `<node>/<id>` is the rest of the key. */
  fence(node = '', id = ''): string {
    return node === '' ? `${this.root}fence/` : `${this.root}fence/${node}/${id}`;
  }

  /** Answers to `node`'s fences; `<id>/<other node>` is the rest of the key. */
  fenced(node: string, id = '', other = ''): string {
    return id === '' ? `${this.root}fenced/${node}/` : `${this.root}fenced/${node}/${id}/${other}`;
  }

  /** A marker a node puts in its own inbox: once its watch delivers it, every earlier batch was delivered. */
  inboxMarker(target: string, id = ''): string {
    return `${this.inboxes}${target}/~marker/${id}`;
  }

  /** Questions for `node`; the query id is the rest of the key. */
  query(node: string, id = ''): string {
    return `${this.root}query/${node}/${id}`;
  }

  /** Answers for `asker`; the query id is the rest of the key. */
  answer(asker: string, id = ''): string {
    return `${this.root}answer/${asker}/${id}`;
  }

  /** Bridge mappings, all of them under one prefix; the mapping id is the rest of the key. */
  bridge(id = ''): string {
    return `${this.root}bridge/${id}`;
  }

  /** Sessions on their way to `node`; the client id is the rest of the key. */
  moves(node: string, clientId = ''): string {
    return `${this.root}moves/${node}/${clientId}`;
  }

  /** Acknowledgements to `node` of sessions it sent; the client id is the rest of the key. */
  moved(node: string, clientId = ''): string {
    return `${this.root}moved/${node}/${clientId}`;
  }

  /** Batches of sessions on their way to `node` (a drain); the batch id is the rest of the key. */
  batches(node: string, batchId = ''): string {
    return `${this.root}batches/${node}/${batchId}`;
  }

  /** Acknowledgements to `node` of batches it sent; the batch id is the rest of the key. */
  batched(node: string, batchId = ''): string {
    return `${this.root}batched/${node}/${batchId}`;
  }

  client(clientId: string): string {
    return this.clients + clientId;
  }

  /** Takeover requests for `node`; the client id is the rest of the key. */
  takeover(node: string, clientId = ''): string {
    return `${this.takeovers}${node}/${clientId}`;
  }

  member(node: string): string {
    return this.members + node;
  }

  route(node: string, route: string): string {
    return `${this.routes}${node}/${route}`;
  }

  /** Splits a route key into its node and route, or null for a key of another shape. */
  parseRoute(key: string): { node: string; route: string } | null {
    if (!key.startsWith(this.routes)) return null;
    const rest = key.slice(this.routes.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) return null;
    return { node: rest.slice(0, slash), route: rest.slice(slash + 1) };
  }

  inbox(target: string): string {
    return `${this.inboxes}${target}/`;
  }

  /** The target node of an inbox key, or null. */
  inboxTarget(key: string): string | null {
    if (!key.startsWith(this.inboxes)) return null;
    const slash = key.indexOf('/', this.inboxes.length);
    return slash < 0 ? null : key.slice(this.inboxes.length, slash);
  }

  /** Sequence numbers are fixed-width so that keys sort in the order they were written. */
  inboxKey(target: string, source: string, seq: number): string {
    return `${this.inboxes}${target}/${source}/${String(seq).padStart(17, '0')}`;
  }

  retained(topic: string): string {
    return this.retainedPrefix + topic;
  }
}
