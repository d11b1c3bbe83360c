<%@ page contentType="application/json; charset=UTF-8" trimDirectiveWhitespaces="true" %><%--
  GET /counter.jsp: counts in the session (creating one if needed) and
  tells who served it: {"node","user","count","session"}. "node" is the
  shoal.test.node system property the test gives each Tomcat, not the
  session id's suffix, so that the test can check the two agree.
--%><%
    Integer n = (Integer) session.getAttribute("count");
    n = (n == null) ? 1 : n + 1;
    session.setAttribute("count", n);
    Object user = session.getAttribute("user");
    out.print("{\"node\":\"" + System.getProperty("shoal.test.node") + "\",\"user\":\"" + (user == null ? "" : user)
        + "\",\"count\":" + n + ",\"session\":\"" + session.getId() + "\"}");
%>
