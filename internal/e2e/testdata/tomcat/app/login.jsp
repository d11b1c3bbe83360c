<%@ page contentType="application/json; charset=UTF-8" trimDirectiveWhitespaces="true" %><%--
  POST /login.jsp with form user=NAME (letters and digits): puts the user
  in the session and answers as counter.jsp does, without counting.
--%><%
    String user = request.getParameter("user");
    if (!"POST".equals(request.getMethod()) || user == null || !user.matches("[A-Za-z0-9]{1,32}")) {
        response.setStatus(400);
        out.print("{\"error\":\"POST user=NAME (letters and digits)\"}");
        return;
    }
    session.setAttribute("user", user);
    Integer n = (Integer) session.getAttribute("count");
    out.print("{\"node\":\"" + System.getProperty("shoal.test.node") + "\",\"user\":\"" + user
        + "\",\"count\":" + (n == null ? 0 : n) + ",\"session\":\"" + session.getId() + "\"}");
%>
