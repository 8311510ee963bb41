// In-memory MongoDB for the conformance suite (scripts/oidc-conformance.sh):
// FerretDB 1.x refuses the nested arrays of the suite's browser commands.
// Usage: java -cp <class path> MongoServerMain.java PORT
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

public class MongoServerMain {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        MongoServer server = new MongoServer(new MemoryBackend());
        server.bind("127.0.0.1", port);
        System.out.println("mongodb://127.0.0.1:" + port + "/");
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
        Thread.currentThread().join();
    }
}
