package cluster

// Crash stops the node as a crash would (kill -9), for tests of the
// cluster and of its clients: its NATS connection and its clients'
// sockets are cut, nothing is handed over and nobody is told; the other
// nodes see it down once its lease has passed. Unlike a real crash, the
// node's goroutines are stopped, so that tests stay leak-free. The
// caller closes the node's listener.
func (n *Node) Crash() {
	n.nc.Close()
	n.stopOnce.Do(func() {
		n.cancel()
		n.gwMu.Lock()
		n.gwClosed = true
		for g := range n.gwAll {
			_ = g.ws.NetConn().Close()
		}
		n.gwMu.Unlock()
		n.closeEnds()
		n.nodes.close()
		n.bg.Wait()
		n.gwWG.Wait()
		n.endWG.Wait()
	})
	_ = n.srv.Close()
}
